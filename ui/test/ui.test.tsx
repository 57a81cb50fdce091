import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { Devices } from '../src/screens/Devices';
import { Families } from '../src/screens/Families';
import { Support } from '../src/screens/Support';
import { Inspector } from '../src/screens/Inspector';
import { Accounts } from '../src/screens/Accounts';
import { App } from '../src/App';
import { family, list, session, stolen } from './fixtures';

type Calls = { cmd: string; args: Record<string, unknown> }[];

/** The IPC edge: commands answered from fixtures, every call recorded. */
function backend(answers: Record<string, (args: Record<string, unknown>) => unknown>): Calls {
  const calls: Calls = [];
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
      const answer = answers[cmd];
      if (!answer) throw { code: 'unexpected', message: `no fixture for ${cmd}` };
      return answer((args ?? {}) as Record<string, unknown>);
    },
    { shouldMockEvents: true },
  );
  return calls;
}

beforeEach(() => {
  // jsdom has no crypto.getRandomValues by default in some versions; Tauri's mocks need it.
  if (!globalThis.crypto?.getRandomValues) vi.stubGlobal('crypto', { getRandomValues: (a: Uint32Array) => a });
});
afterEach(() => {
  cleanup();
  clearMocks();
});

describe('Devices', () => {
  it('groups sessions by device, marks this device, and revokes after confirmation', async () => {
    const calls = backend({
      sessions: () => list,
      revoke_session: () => ({ ...stolen, state: 'revoked' }),
    });
    render(<Devices version={0} onShowFamily={() => {}} />);
    const laptop = await screen.findByRole('heading', { name: 'laptop' });
    const laptopCard = laptop.closest('article')!;
    expect(within(laptopCard).getAllByText('This device').length).toBeGreaterThan(0);
    expect(within(laptopCard).getByText(/3 minutes ago/)).toBeTruthy();
    expect(within(laptopCard).getByText(/Bound to this device \(key NzbLsXh8uD…\)/)).toBeTruthy();
    const phoneCard = screen.getByRole('heading', { name: 'phone' }).closest('article')!;
    expect(within(phoneCard).getByText('Suspicious')).toBeTruthy();
    expect(within(phoneCard).getByText(/may be in two places/)).toBeTruthy();
    expect(within(phoneCard).getByText(/not bound to a device key/)).toBeTruthy();

    await userEvent.click(within(phoneCard).getByRole('button', { name: 'Revoke' }));
    const dialog = screen.getByRole('dialog');
    expect(within(dialog).getByText(/Revoke Latchkey Desktop on phone/)).toBeTruthy();
    // Focus starts on the safe choice; Escape closes without revoking.
    expect(document.activeElement?.textContent).toBe('Cancel');
    await userEvent.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(calls.some((c) => c.cmd === 'revoke_session')).toBe(false);

    await userEvent.click(within(phoneCard).getByRole('button', { name: 'Revoke' }));
    await userEvent.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Revoke' }));
    await waitFor(() => expect(calls.find((c) => c.cmd === 'revoke_session')?.args).toEqual({ session: 's-phone' }));
    expect(await screen.findByText('Revoked Latchkey Desktop on phone.')).toBeTruthy();
  });

  it('signs out every other device', async () => {
    const calls = backend({ sessions: () => list, revoke_other_sessions: () => ({ revoked: ['s-phone'] }) });
    render(<Devices version={0} onShowFamily={() => {}} />);
    await screen.findByRole('heading', { name: 'laptop' });
    await userEvent.click(screen.getByRole('button', { name: 'Sign out all other devices' }));
    await userEvent.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Sign out others' }));
    expect(await screen.findByText('Signed out 1 other session.')).toBeTruthy();
    expect(calls.filter((c) => c.cmd === 'revoke_other_sessions')).toHaveLength(1);
  });

  it('has a real empty state and an error state', async () => {
    backend({ sessions: () => ({ devices: [], total: 0, next_offset: null }) });
    render(<Devices version={0} onShowFamily={() => {}} />);
    expect(await screen.findByText(/No sessions to show here/)).toBeTruthy();
    cleanup();
    backend({
      sessions: () => {
        throw { code: 'unreachable', message: 'cannot reach the server: connection refused' };
      },
    });
    render(<Devices version={0} onShowFamily={() => {}} />);
    expect((await screen.findByRole('alert')).textContent).toMatch(/connection refused/);
  });
});

describe('Token families', () => {
  it('draws the chain, explains the signal, and offers Kill family and This was me', async () => {
    const calls = backend({
      sessions: () => list,
      family: () => family,
      acknowledge: () => ({ ...stolen, suspicious: false, signals: [] }),
      revoke_session: () => ({ ...stolen, state: 'revoked' }),
    });
    render(<Families version={0} selected="s-phone" onSelect={() => {}} />);
    const picture = await screen.findByRole('img', { name: /Rotation chain of 2 generations/ });
    expect(picture.querySelectorAll('circle')).toHaveLength(2);
    expect(screen.getByText(/someone else may hold its token/)).toBeTruthy();
    await userEvent.click(screen.getByRole('button', { name: 'This was me' }));
    await waitFor(() => expect(calls.some((c) => c.cmd === 'acknowledge' && c.args.session === 's-phone')).toBe(true));
    await userEvent.click(screen.getByRole('button', { name: 'Kill family' }));
    await userEvent.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Kill family' }));
    await waitFor(() => expect(calls.some((c) => c.cmd === 'revoke_session' && c.args.session === 's-phone')).toBe(true));
  });
});

describe('Support', () => {
  it('needs a reason before it revokes, and sends it', async () => {
    const user = { id: 'u1', email: 'demo@latchkey.local', name: 'Demo', role: 'user', created_at: '', disabled: false, live_sessions: 2 };
    const calls = backend({
      admin_search_users: () => ({ users: [user] }),
      admin_user_sessions: () => ({ ...list, user }),
      admin_events: () => ({ events: stolen.signals }),
      admin_revoke_session: () => ({ ...stolen, state: 'revoked' }),
    });
    render(<Support />);
    await userEvent.type(screen.getByLabelText('Find a user by email or id'), 'demo');
    await userEvent.click(screen.getByRole('button', { name: 'Search' }));
    await userEvent.click(await screen.findByRole('button', { name: /demo@latchkey.local/ }));
    const phone = (await screen.findByRole('heading', { name: 'phone' })).closest('article')!;
    await userEvent.click(within(phone).getByRole('button', { name: 'Revoke' }));
    const dialog = screen.getByRole('dialog');
    const confirm = within(dialog).getByRole('button', { name: 'Revoke' }) as HTMLButtonElement;
    expect(confirm.disabled).toBe(true);
    await userEvent.type(within(dialog).getByLabelText(/Reason/), 'ticket 4711');
    expect(confirm.disabled).toBe(false);
    await userEvent.click(confirm);
    await waitFor(() =>
      expect(calls.find((c) => c.cmd === 'admin_revoke_session')?.args).toEqual({ session: 's-phone', reason: 'ticket 4711' }),
    );
  });
});

describe('Token inspector', () => {
  it('shows claims and a countdown', async () => {
    const exp = Math.floor(Date.now() / 1000) + 125;
    backend({
      token_info: () => ({
        account: 'demo@latchkey.local',
        issuer: 'http://127.0.0.1:7878',
        format: 'jwt',
        header: { alg: 'EdDSA', kid: 'k1', typ: 'at+jwt' },
        claims: { sub: 'u1', sid: 's-laptop', exp, scope: 'openid account' },
        expires_at: exp,
      }),
    });
    render(<Inspector version={0} />);
    expect(await screen.findByText('s-laptop')).toBeTruthy();
    expect(screen.getByText(/Expires in/).textContent).toMatch(/2:0[0-5]/);
    expect(screen.getByText('EdDSA')).toBeTruthy();
  });
});

describe('App', () => {
  it('explains a missing keychain instead of showing a blank window', async () => {
    backend({
      accounts: () => {
        throw { code: 'keychain', message: 'the Secret Service is not usable\n  fix: start a Secret Service' };
      },
    });
    render(<App />);
    expect(await screen.findByText(/cannot keep your tokens safe/)).toBeTruthy();
    expect(screen.getByText(/fix: start a Secret Service/)).toBeTruthy();
  });

  it('says when the server is unreachable, and shows Support only to staff', async () => {
    const account = { id: 'a1', label: 'demo@latchkey.local', issuer: 'http://127.0.0.1:7878', client_id: 'latchkey-desktop', current: true, state: 'signed_in', reason: null, access_expires_at: null, device_key: null };
    backend({
      accounts: () => ({ accounts: [account], keychain: 'Secret Service', keychain_persists: true }),
      me: () => {
        throw { code: 'unreachable', message: 'cannot reach the server: connection refused' };
      },
      sessions: () => list,
    });
    render(<App />);
    expect((await screen.findAllByRole('alert'))[0]?.textContent).toMatch(/Can’t reach the Latchkey server/);
    expect(screen.queryByRole('button', { name: 'Support' })).toBeNull();
    cleanup();
    backend({
      accounts: () => ({ accounts: [account], keychain: 'Secret Service', keychain_persists: true }),
      me: () => ({ id: 'u9', email: 'support@latchkey.local', name: 'S', role: 'support', session_id: 's' }),
      sessions: () => list,
    });
    render(<App />);
    expect(await screen.findByRole('button', { name: 'Support' })).toBeTruthy();
    expect(session().current).toBe(true);
  });
});

describe('Accounts', () => {
  it('says which sessions are bound to this device and which are bearer', () => {
    const base = { issuer: 'http://127.0.0.1:7878', client_id: 'latchkey-desktop', reason: null, access_expires_at: null };
    backend({});
    render(
      <Accounts
        data={{
          accounts: [
            { ...base, id: 'a1', label: 'demo@latchkey.local', current: true, state: 'signed_in', device_key: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
            { ...base, id: 'a2', label: 'other@peer.example', current: false, state: 'signed_in', device_key: null },
          ],
          keychain: 'Secret Service',
          keychain_persists: true,
        }}
        onChanged={() => {}}
      />,
    );
    expect(screen.getByText(/Bound to this device: key NzbLsXh8uD… is kept in the Secret Service and never sent/)).toBeTruthy();
    expect(screen.getByText(/Bearer session/)).toBeTruthy();
  });
});

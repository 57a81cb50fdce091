import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { act, cleanup, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import { Devices } from '../src/screens/Devices';
import { Families } from '../src/screens/Families';
import { Support } from '../src/screens/Support';
import { Inspector } from '../src/screens/Inspector';
import { Accounts } from '../src/screens/Accounts';
import { App } from '../src/App';
import { absolute, clockTime } from '../src/time';
import { family, list, reused, session, stolen } from './fixtures';

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
  it('groups sessions by device, marks this device once, and signs one out after confirmation', async () => {
    const calls = backend({
      sessions: () => list,
      revoke_session: () => ({ ...stolen, state: 'revoked' }),
    });
    render(<Devices version={0} onShowFamily={() => {}} />);
    const laptop = await screen.findByRole('heading', { name: 'laptop' });
    const laptopCard = laptop.closest('article')!;
    expect(screen.getAllByText('This device')).toHaveLength(1);
    expect(screen.getByText('2 devices · 1 needs attention')).toBeTruthy();
    // Each filter says how many it would show.
    expect(screen.getByRole('button', { name: 'Suspicious 1' }).getAttribute('aria-pressed')).toBe('false');
    expect(screen.getByRole('button', { name: 'Revoked 0' })).toBeTruthy();
    expect(within(laptopCard).getByText(/3 minutes ago/)).toBeTruthy();
    expect(within(laptopCard).getByText(/Stays signed in until/)).toBeTruthy();
    // The session this app uses is signed out from Accounts, not here.
    expect(within(laptopCard).queryByRole('button', { name: 'Sign out' })).toBeNull();
    expect(within(laptopCard).getByText(/Bound to this device \(key NzbLsXh8uD…\)/)).toBeTruthy();
    const phoneCard = screen.getByRole('heading', { name: 'phone' }).closest('article')!;
    expect(within(phoneCard).getByText('Suspicious')).toBeTruthy();
    expect(within(phoneCard).getByText(/may be in two places/)).toBeTruthy();
    expect(within(phoneCard).getByText(/not bound to a device key/)).toBeTruthy();

    const signOut = within(phoneCard).getByRole('button', { name: 'Sign out' });
    expect(signOut.className).not.toContain('danger');
    await userEvent.click(signOut);
    const dialog = screen.getByRole('dialog');
    expect(within(dialog).getByText(/Sign out Latchkey Desktop on phone/)).toBeTruthy();
    expect(within(dialog).getByText(/phone will have to sign in again/)).toBeTruthy();
    // Focus starts on the safe choice; Escape closes without revoking.
    expect(document.activeElement?.textContent).toBe('Cancel');
    await userEvent.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(calls.some((c) => c.cmd === 'revoke_session')).toBe(false);
    // Focus is back on the button that opened the dialog.
    expect(document.activeElement).toBe(signOut);
    // With nothing typed, a click beside the dialog closes it.
    await userEvent.click(signOut);
    await userEvent.click(document.querySelector('.backdrop')!);
    expect(screen.queryByRole('dialog')).toBeNull();

    await userEvent.click(signOut);
    await userEvent.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Sign out' }));
    await waitFor(() => expect(calls.find((c) => c.cmd === 'revoke_session')?.args).toEqual({ session: 's-phone' }));
    const notice = await screen.findByText('Signed out Latchkey Desktop on phone.');
    expect(document.activeElement).toBe(notice);
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
    backend({ sessions: () => ({ devices: [], total: 0, next_offset: null, counts: { all: 0, active: 0, revoked: 0, expired: 0, suspicious: 0 } }) });
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
  const noop = { onSignInAgain: () => {}, onSignOutEverywhere: async () => {} };

  it('leads a live suspicious session with its verdict and decisions, the chain under details', async () => {
    const calls = backend({
      sessions: () => list,
      family: () => family,
      acknowledge: () => ({ ...stolen, suspicious: false, signals: [] }),
      revoke_session: () => ({ ...stolen, state: 'revoked' }),
    });
    render(<Families version={0} selected="s-phone" onSelect={() => {}} {...noop} />);
    expect((await screen.findByText(/^This sign-in may be in someone else's hands: Used from two networks/)).tagName).toBe('P');
    const picture = screen.getByRole('group', { name: /Rotation chain of 2 generations/ });
    expect(picture.querySelectorAll('circle')).toHaveLength(2);
    expect(picture.closest('details')?.open).toBe(false);
    // Every token is a keyboard stop, told in words when chosen: nothing only on hover.
    const second = within(picture).getByRole('button', { name: /^Token 2: live/ });
    await userEvent.click(second);
    expect(screen.getByText(/^Token 2: live\. Issued .* to 198\.51\.100\.7\./)).toBeTruthy();
    await userEvent.click(screen.getByRole('button', { name: 'This was me' }));
    await waitFor(() => expect(calls.some((c) => c.cmd === 'acknowledge' && c.args.session === 's-phone')).toBe(true));
    await userEvent.click(screen.getByRole('button', { name: 'Sign out phone' }));
    const dialog = screen.getByRole('dialog');
    expect(within(dialog).getByText(/phone will have to sign in again/)).toBeTruthy();
    await userEvent.click(within(dialog).getByRole('button', { name: 'Sign out' }));
    await waitFor(() => expect(calls.some((c) => c.cmd === 'revoke_session' && c.args.session === 's-phone')).toBe(true));
  });

  it('shows the family chosen last, whichever answer comes last', async () => {
    const answers: Record<string, (f: typeof family) => void> = {};
    backend({
      sessions: () => list,
      family: (args) => new Promise((resolve) => (answers[args.session as string] = resolve)),
    });
    const props = { version: 0, onSelect: () => {}, ...noop };
    const { rerender } = render(<Families {...props} selected="s-copy" />);
    await waitFor(() => expect(answers['s-copy']).toBeTruthy());
    rerender(<Families {...props} selected="s-phone" />);
    await waitFor(() => expect(answers['s-phone']).toBeTruthy());
    await act(async () => answers['s-phone']!(family));
    await act(async () => answers['s-copy']!(reused));
    expect(screen.queryByText(/^Someone else used a copy of this sign-in/)).toBeNull();
    expect(screen.getByRole('button', { name: 'This was me' })).toBeTruthy();
  });

  it('moves to a session of this account when the chosen one belongs to another', async () => {
    const chosen = vi.fn();
    backend({ sessions: () => list, family: () => family });
    render(<Families version={0} selected="s-of-another-account" onSelect={chosen} {...noop} />);
    await waitFor(() => expect(chosen).toHaveBeenCalledWith('s-phone'));
  });

  it('says in one sentence who used a copy and what Latchkey did, and offers the way back', async () => {
    const everywhere = vi.fn(async () => {});
    const again = vi.fn();
    backend({ sessions: () => list, family: () => reused });
    render(<Families version={0} selected="s-copy" onSelect={() => {}} onSignInAgain={again} onSignOutEverywhere={everywhere} />);
    const verdict = await screen.findByText(/^Someone else used a copy of this sign-in/);
    const time = clockTime(reused.session.revoked!.at);
    expect(verdict.textContent).toBe(
      `Someone else used a copy of this sign-in from curl/8.5.0 at 127.0.0.1. Latchkey blocked it and signed this session out at ${time}.`,
    );
    // Above the details, no jargon; the server ended it, so "This was me" is not offered.
    const card = verdict.closest('.family')!;
    const above = [...card.children].filter((c) => c.tagName !== 'DETAILS').map((c) => c.textContent).join(' ');
    expect(above).not.toMatch(/generation|family|killed/i);
    expect(screen.queryByRole('button', { name: 'This was me' })).toBeNull();
    // The chain branches to the other software's lane at the replay.
    const chain = screen.getByRole('group', { name: /ended by revocation/ });
    expect(within(chain).getByText('Other software')).toBeTruthy();
    expect(within(chain).getByRole('button', { name: /A copy of token 1 came back .* from curl\/8\.5\.0 at 127\.0\.0\.1/ })).toBeTruthy();
    // The session ran on this device (the laptop): signing in again is the way back.
    await userEvent.click(screen.getByRole('button', { name: 'Sign in again on laptop' }));
    expect(again).toHaveBeenCalledOnce();
    await userEvent.click(screen.getByRole('button', { name: 'Sign out everywhere' }));
    await userEvent.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Sign out everywhere' }));
    await waitFor(() => expect(everywhere).toHaveBeenCalledOnce());
    // The list tells its entries apart.
    expect(screen.getByRole('button', { name: /phone.*started .* · signed in/ })).toBeTruthy();
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
    await userEvent.click(within(phone).getByRole('button', { name: 'Sign out' }));
    const dialog = screen.getByRole('dialog');
    const confirm = within(dialog).getByRole('button', { name: 'Sign out' }) as HTMLButtonElement;
    expect(confirm.disabled).toBe(true);
    await userEvent.type(within(dialog).getByLabelText(/Reason/), 'ticket 4711');
    expect(confirm.disabled).toBe(false);
    // A stray click beside the dialog keeps what was typed.
    await userEvent.click(document.querySelector('.backdrop')!);
    expect(screen.getByRole('dialog')).toBe(dialog);
    expect((within(dialog).getByLabelText(/Reason/) as HTMLTextAreaElement).value).toBe('ticket 4711');
    // Tab goes round the dialog's own controls, never behind it.
    within(dialog).getByLabelText(/Reason/).focus();
    for (let i = 0; i < 4; i++) {
      await userEvent.tab();
      expect(dialog.contains(document.activeElement)).toBe(true);
    }
    await userEvent.tab({ shift: true });
    expect(dialog.contains(document.activeElement)).toBe(true);
    await userEvent.click(confirm);
    await waitFor(() =>
      expect(calls.find((c) => c.cmd === 'admin_revoke_session')?.args).toEqual({ session: 's-phone', reason: 'ticket 4711' }),
    );
    // The outcome takes the focus; Ctrl+F goes back to the search.
    const notice = await screen.findByText(/^Signed out /);
    await waitFor(() => expect(document.activeElement).toBe(notice));
    await userEvent.keyboard('{Control>}f{/Control}');
    await waitFor(() => expect(document.activeElement).toBe(screen.getByLabelText('Find a user by email or id')));
  });
});

describe('Support shell', () => {
  it('keeps the audited bar, shows who the user is, opens a family beside the list, and has the audit log on its own tab', async () => {
    const user = { id: 'u1', email: 'demo@latchkey.local', name: 'Demo User', role: 'user', created_at: '2026-11-30T09:15:00Z', disabled: false, live_sessions: 2 };
    const calls = backend({
      admin_search_users: () => ({ users: [user] }),
      admin_user_sessions: () => ({ ...list, user }),
      admin_events: () => ({ events: [] }),
      admin_family: () => family,
      admin_audit: (args) => ({
        records: [
          { seq: 7, at: '2026-12-03T08:26:53.120Z', actor_kind: 'staff', actor_id: 'u9', actor_email: 'support@latchkey.local', action: 'admin.session.revoke', target_user_id: 'u1', target_session_id: 's-phone', reason: 'ticket 17', ip: '127.0.0.1', user_agent: null, details: {}, prev_hash: 'a', hash: 'b' },
        ].filter((r) => !args.action || r.action === args.action),
        next_before: null,
      }),
    });
    render(<Support />);
    expect(screen.getByRole('note').textContent).toMatch(/every lookup and every action is audited/);
    await userEvent.type(screen.getByLabelText('Find a user by email or id'), 'demo');
    await userEvent.click(screen.getByRole('button', { name: 'Search' }));
    await userEvent.click(await screen.findByRole('button', { name: /demo@latchkey.local/ }));
    expect(await screen.findByRole('heading', { name: 'Demo User' })).toBeTruthy();
    expect(screen.getByText('2026-11-30 09:15:00 UTC')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Copy user id' })).toBeTruthy();
    expect(screen.getAllByRole('button', { name: 'Copy session id' })).toHaveLength(2);

    const phone = screen.getByRole('heading', { name: 'phone' }).closest('article')!;
    await userEvent.click(within(phone).getByRole('button', { name: 'Token family' }));
    const drawer = await screen.findByRole('complementary', { name: /Latchkey Desktop on phone/ });
    await waitFor(() => expect(document.activeElement).toBe(within(drawer).getByRole('button', { name: 'Close' })));
    await userEvent.keyboard('{Escape}');
    expect(screen.queryByRole('complementary')).toBeNull();

    await userEvent.click(screen.getByRole('tab', { name: 'Audit log' }));
    const row = (await screen.findByText('2026-12-03 08:26:53 UTC')).closest('tr')!;
    expect(within(row).getByText('support@latchkey.local')).toBeTruthy();
    await userEvent.selectOptions(screen.getByLabelText('Action'), 'admin.users.search');
    await waitFor(() => expect(calls.filter((c) => c.cmd === 'admin_audit').at(-1)?.args.action).toBe('admin.users.search'));
    expect(await screen.findByText('No records.')).toBeTruthy();
  });
});

describe('Token inspector', () => {
  /** The decoded access token, `left` seconds before it expires. */
  function tokenInfo(left: number) {
    const exp = Math.floor(Date.now() / 1000) + left;
    return {
      account: 'demo@latchkey.local',
      issuer: 'http://127.0.0.1:7878',
      format: 'jwt',
      header: { alg: 'EdDSA', kid: 'k1', typ: 'at+jwt' },
      claims: { sub: 'u1', sid: 's-laptop', exp, scope: 'openid account' },
      expires_at: exp,
    };
  }

  it('shows claims and a countdown', async () => {
    backend({ token_info: () => tokenInfo(125) });
    render(<Inspector version={0} />);
    expect(await screen.findByText('s-laptop')).toBeTruthy();
    expect(screen.getByText(/Expires in/).textContent).toMatch(/2:0[0-5]/);
    expect(screen.getByText('EdDSA')).toBeTruthy();
    // Whose token, and each claim in plain words with its value to copy.
    expect(screen.getByText('demo@latchkey.local').tagName).toBe('STRONG');
    expect(screen.getByText('What it allows')).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Copy Session' })).toBeTruthy();
    // Two minutes left: nothing is announced; the ticking countdown is not a live region.
    expect(screen.getByTestId('countdown-announcement').textContent).toBe('');
    expect(screen.getByText(/Expires in/).closest('[aria-live]')).toBeNull();
  });

  it('announces the last minute in its live region', async () => {
    backend({ token_info: () => tokenInfo(45) });
    render(<Inspector version={0} />);
    const live = await screen.findByTestId('countdown-announcement');
    expect(live.getAttribute('role')).toBe('status');
    expect(live.textContent).toBe('The access token expires in less than a minute.');
  });

  it('announces expiry, and asks for a fresh token once, not in a loop', async () => {
    const calls = backend({ token_info: () => tokenInfo(-30) });
    render(<Inspector version={0} />);
    const live = await screen.findByTestId('countdown-announcement');
    await waitFor(() => expect(live.textContent).toMatch(/has expired/));
    await new Promise((r) => setTimeout(r, 300));
    expect(calls.filter((c) => c.cmd === 'token_info').length).toBeLessThanOrEqual(2);
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
      me: () => ({ id: 'u9', email: 'support@latchkey.local', name: 'S', role: 'support', session_id: 's', staff: true }),
      sessions: () => list,
    });
    render(<App />);
    expect(await screen.findByRole('button', { name: 'Support' })).toBeTruthy();
    expect(session().current).toBe(true);
  });

  it('keeps the newest profile when an older request for it fails afterwards', async () => {
    const account = { id: 'a1', label: 'support@latchkey.local', issuer: 'http://127.0.0.1:7878', client_id: 'latchkey-desktop', current: true, state: 'signed_in', reason: null, access_expires_at: null, device_key: null };
    let asked = 0;
    let failFirst: (e: unknown) => void = () => {};
    backend({
      accounts: () => ({ accounts: [account], keychain: 'Secret Service', keychain_persists: true }),
      me: () =>
        ++asked === 1
          ? new Promise((_, reject) => (failFirst = reject))
          : { id: 'u9', email: 'support@latchkey.local', name: 'S', role: 'support', session_id: 's', staff: true },
      sessions: () => list,
    });
    render(<App />);
    await waitFor(() => expect(asked).toBe(1));
    // A reload (here a security event) asks again, and that answer comes first.
    await act(async () => emit('security-event', {}));
    expect(await screen.findByRole('button', { name: 'Support' })).toBeTruthy();
    await act(async () => failFirst({ code: 'refused', message: 'the server refused the token' }));
    expect(screen.getByRole('button', { name: 'Support' })).toBeTruthy();
  });

  it('switches accounts from the sidebar', async () => {
    const one = { id: 'a1', label: 'demo@latchkey.local', issuer: 'http://127.0.0.1:7878', client_id: 'latchkey-desktop', current: true, state: 'signed_in', reason: null, access_expires_at: null, device_key: null };
    const two = { ...one, id: 'a2', label: 'other@latchkey.local', current: false };
    const calls = backend({
      accounts: () => ({ accounts: [one, two], keychain: 'Secret Service', keychain_persists: true }),
      me: () => ({ id: 'u1', email: 'demo@latchkey.local', name: 'Demo', role: 'user', session_id: 's-laptop', staff: false }),
      sessions: () => list,
      switch_account: () => null,
    });
    render(<App />);
    const picker = (await screen.findByLabelText('Account')) as HTMLSelectElement;
    expect(picker.value).toBe('a1');
    await userEvent.selectOptions(picker, 'a2');
    await waitFor(() => expect(calls.find((c) => c.cmd === 'switch_account')?.args).toEqual({ account: 'a2' }));
  });

  it('switches screens with Ctrl+digit and moves the focus to the new heading', async () => {
    const account = { id: 'a1', label: 'demo@latchkey.local', issuer: 'http://127.0.0.1:7878', client_id: 'latchkey-desktop', current: true, state: 'signed_in', reason: null, access_expires_at: null, device_key: null };
    backend({
      accounts: () => ({ accounts: [account], keychain: 'Secret Service', keychain_persists: true }),
      me: () => ({ id: 'u1', email: 'demo@latchkey.local', name: 'Demo', role: 'user', session_id: 's-laptop' }),
      sessions: () => list,
      family: () => family,
      token_info: () => ({ account: 'demo@latchkey.local', issuer: 'http://127.0.0.1:7878', format: 'opaque', header: null, claims: null, expires_at: null }),
    });
    render(<App />);
    await screen.findByRole('heading', { name: 'Devices' });
    expect(screen.getByRole('button', { name: 'Token inspector' }).getAttribute('aria-keyshortcuts')).toBe('Control+3');
    await userEvent.keyboard('{Control>}3{/Control}');
    const inspector = await screen.findByRole('heading', { name: 'Token inspector' });
    expect(document.activeElement).toBe(inspector);
    await userEvent.keyboard('{Control>}2{/Control}');
    expect(document.activeElement).toBe(await screen.findByRole('heading', { name: 'Token families' }));
    // Only as many shortcuts as sections: Ctrl+9 does nothing.
    await userEvent.keyboard('{Control>}9{/Control}');
    expect(screen.getByRole('heading', { name: 'Token families' })).toBeTruthy();
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

  const base = { issuer: 'http://127.0.0.1:7878', client_id: 'latchkey-desktop', reason: null, access_expires_at: null, device_key: null };
  const accounts = (signedIn: boolean) => ({
    accounts: [{ ...base, id: 'a1', label: 'demo@latchkey.local', current: true, state: (signedIn ? 'signed_in' : 'signed_out') as 'signed_in' | 'signed_out' }],
    keychain: 'Secret Service',
    keychain_persists: true,
  });

  it('starts with an empty server field that says what goes in it, and signs in again in the browser', async () => {
    const calls = backend({ add_account: () => ({}) });
    render(<Accounts data={accounts(false)} onChanged={() => {}} />);
    const field = screen.getByLabelText('Server address') as HTMLInputElement;
    expect(field.value).toBe('');
    expect(field.getAttribute('aria-describedby')).toBe('issuer-hint');
    expect(document.getElementById('issuer-hint')?.textContent).toMatch(/address of your Latchkey server/);
    await userEvent.click(screen.getByRole('button', { name: 'Sign in again' }));
    await waitFor(() => expect(calls.find((c) => c.cmd === 'add_account')?.args).toEqual({ issuer: 'http://127.0.0.1:7878', clientId: null }));
  });

  it('signs in with a code: the address, the code and a QR code until it is approved', async () => {
    let shown: { onmessage: (code: unknown) => void } | undefined;
    let approve: (account: unknown) => void = () => {};
    const calls = backend({
      add_account_with_code: (args) => {
        shown = args.shown as typeof shown;
        return new Promise((resolve) => (approve = resolve));
      },
    });
    const changed = vi.fn();
    render(<Accounts data={{ ...accounts(false), accounts: [] }} onChanged={changed} />);
    await userEvent.type(screen.getByLabelText('Server address'), 'http://127.0.0.1:7878');
    await userEvent.click(screen.getByRole('button', { name: 'Sign in with a code instead' }));
    await waitFor(() =>
      expect(calls.find((c) => c.cmd === 'add_account_with_code')?.args).toMatchObject({ issuer: 'http://127.0.0.1:7878', clientId: null }),
    );
    expect(screen.getByText(/Asking http:\/\/127\.0\.0\.1:7878 for a code/)).toBeTruthy();
    act(() =>
      shown!.onmessage({
        user_code: 'WDJB-MJHT',
        verification_uri: 'http://127.0.0.1:7878/device',
        verification_uri_complete: 'http://127.0.0.1:7878/device?user_code=WDJB-MJHT',
        expires_at: Date.now() / 1000 + 600,
        qr: { size: 21, d: 'M0 0h1v1h-1z' },
      }),
    );
    const panel = screen.getByRole('region', { name: 'Sign in with a code' });
    expect(within(panel).getByText('http://127.0.0.1:7878/device')).toBeTruthy();
    expect(within(panel).getByLabelText('Code: W D J B - M J H T').textContent).toBe('WDJB-MJHT');
    expect(within(panel).getByRole('img', { name: /QR code of the sign-in address/ })).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Sign in with browser' })).toBeNull();
    act(() => approve({}));
    await waitFor(() => expect(changed).toHaveBeenCalled());
    expect(screen.queryByRole('region', { name: 'Sign in with a code' })).toBeNull();
  });

  it('signs out before it forgets, and warns when the server did not confirm', async () => {
    const calls = backend({ sign_out: () => false, forget_account: () => null });
    render(<Accounts data={accounts(true)} onChanged={() => {}} />);
    await userEvent.click(screen.getByRole('button', { name: 'Forget' }));
    const dialog = screen.getByRole('dialog');
    expect(within(dialog).getByText(/The server ends this session, then/)).toBeTruthy();
    await userEvent.click(within(dialog).getByRole('button', { name: 'Forget' }));
    await waitFor(() => expect(calls.map((c) => c.cmd)).toEqual(['sign_out', 'forget_account']));
    expect((await screen.findByText(/did not confirm the sign-out/)).getAttribute('role')).toBe('alert');
  });
});

describe('times', () => {
  it('are written in English with a 12-hour clock, in local time', () => {
    const afternoon = new Date(2026, 11, 3, 14, 26, 54).toISOString();
    expect(absolute(afternoon)).toBe('Dec 3, 2026, 2:26:54 PM');
    expect(clockTime(afternoon)).toBe('2:26 PM');
    expect(clockTime(afternoon, true)).toBe('2:26:54 PM');
    expect(clockTime(new Date(2026, 0, 9, 0, 5).toISOString())).toBe('12:05 AM');
    expect(clockTime(new Date(2026, 0, 9, 12, 0).toISOString())).toBe('12:00 PM');
    expect(absolute('not a time')).toBe('');
    expect(absolute(null)).toBe('');
  });
});

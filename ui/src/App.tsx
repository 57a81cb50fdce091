import { useCallback, useEffect, useRef, useState } from 'react';
import { listen } from '@tauri-apps/api/event';
import { api, isCommandError, messageOf, type Accounts as AccountsData, type Profile } from './api';
import { Accounts } from './screens/Accounts';
import { Devices } from './screens/Devices';
import { Families } from './screens/Families';
import { Inspector } from './screens/Inspector';
import { Support } from './screens/Support';
import { useWindowKey } from './keys';

type Tab = 'accounts' | 'devices' | 'families' | 'support' | 'inspector';

interface Connection {
  online: boolean;
  message?: string;
  retry_in?: number;
}

export function App() {
  const [accounts, setAccounts] = useState<AccountsData | null>(null);
  const [fatal, setFatal] = useState<string | null>(null);
  const [me, setMe] = useState<Profile | null>(null);
  const [tab, setTab] = useState<Tab | null>(null);
  const [version, setVersion] = useState(0);
  const [connection, setConnection] = useState<Connection>({ online: true });
  const [familyOf, setFamilyOf] = useState<string | null>(null);
  const [switchError, setSwitchError] = useState<string | null>(null);

  const current = accounts?.accounts.find((a) => a.current && a.state === 'signed_in') ?? null;

  const loadAccounts = useCallback(async () => {
    try {
      const data = await api.accounts();
      setAccounts(data);
      setFatal(null);
    } catch (e) {
      if (isCommandError(e) && e.code === 'keychain') setFatal(e.message);
      else setFatal(messageOf(e));
    }
  }, []);

  /** The latest profile request: an older answer (from the token before a new sign-in)
   * arriving after a newer one must not overwrite it. */
  const meRequest = useRef(0);
  const loadMe = useCallback(async () => {
    const request = ++meRequest.current;
    if (!current) {
      setMe(null);
      return;
    }
    try {
      const profile = await api.me();
      if (request !== meRequest.current) return;
      setMe(profile);
      setConnection({ online: true });
    } catch (e) {
      if (request !== meRequest.current) return;
      if (isCommandError(e) && e.code === 'unreachable') {
        setConnection({ online: false, message: e.message });
      } else if (isCommandError(e) && (e.code === 'signed_out' || e.code === 'not_signed_in')) {
        void loadAccounts();
      } else {
        setMe(null);
      }
    }
  }, [current, loadAccounts]);

  useEffect(() => {
    void loadAccounts();
    const unlisten = [
      listen('security-event', () => setVersion((v) => v + 1)),
      listen<Connection>('connection', (e) => {
        setConnection(e.payload);
        if (e.payload.online) setVersion((v) => v + 1);
      }),
      listen('account-changed', () => void loadAccounts()),
    ];
    return () => {
      // The window may already be going away: nothing left to unlisten then.
      for (const u of unlisten) void u.then((f) => f()).catch(() => undefined);
    };
  }, [loadAccounts]);

  // Again whenever what the screens show is reloaded (a sign-in, a security event, the event
  // stream back online): a profile fetched while a sign-in was being replaced may be stale.
  useEffect(() => {
    void loadMe();
  }, [loadMe, current?.id, version]);

  // While the server is unreachable, reload every few seconds (the profile with the rest, by
  // the effect above).
  useEffect(() => {
    if (connection.online) return;
    const t = setInterval(() => setVersion((v) => v + 1), 5000);
    return () => clearInterval(t);
  }, [connection.online]);

  if (fatal) {
    return (
      <main className="fatal" role="alert">
        <h1>Latchkey cannot keep your tokens safe here</h1>
        <pre>{fatal}</pre>
        <p>Nothing was stored. Fix the keychain and start Latchkey again.</p>
      </main>
    );
  }
  if (!accounts) {
    return (
      <main className="splash" role="status">
        Opening Latchkey…
      </main>
    );
  }

  const shown: Tab = tab ?? (current ? 'devices' : 'accounts');
  const tabs: { id: Tab; label: string; needsAccount: boolean }[] = [
    { id: 'devices', label: 'Devices', needsAccount: true },
    { id: 'families', label: 'Token families', needsAccount: true },
    { id: 'inspector', label: 'Token inspector', needsAccount: true },
    ...(me?.staff ? [{ id: 'support' as Tab, label: 'Support', needsAccount: true }] : []),
    { id: 'accounts', label: 'Accounts', needsAccount: false },
  ];
  const screen = !current && shown !== 'accounts' ? 'accounts' : shown;
  const usable = tabs.filter((t) => !t.needsAccount || current);

  return (
    <div className="app">
      <Shortcuts tabs={usable.map((t) => t.id)} onSwitch={setTab} />
      <FocusHeading screen={screen} />
      <nav className="sidebar" aria-label="Sections">
        <div className="brand">
          <img src="/icon.png" alt="" width={28} height={28} /> Latchkey
        </div>
        <ul>
          {tabs.map((t) => (
            <li key={t.id}>
              <button
                type="button"
                aria-current={screen === t.id ? 'page' : undefined}
                aria-keyshortcuts={shortcutOf(usable.findIndex((u) => u.id === t.id))}
                disabled={t.needsAccount && !current}
                onClick={() => setTab(t.id)}
              >
                {t.label}
              </button>
            </li>
          ))}
        </ul>
        <div className="whoami">
          {accounts.accounts.length > 1 ? (
            <label className="field">
              <span>Account</span>
              <select
                value={accounts.accounts.find((a) => a.current)?.id ?? ''}
                onChange={(e) => {
                  const id = e.target.value;
                  setSwitchError(null);
                  void api
                    .switchAccount(id)
                    .then(loadAccounts)
                    .then(() => setVersion((v) => v + 1))
                    .catch((err: unknown) => setSwitchError(messageOf(err)));
                }}
              >
                {accounts.accounts.map((a) => (
                  <option key={a.id} value={a.id}>
                    {a.label}
                    {a.state === 'signed_in' ? '' : ' (signed out)'}
                  </option>
                ))}
              </select>
            </label>
          ) : current ? (
            <>
              <span className="dot online" aria-hidden="true" /> {current.label}
            </>
          ) : (
            <span className="muted">Not signed in</span>
          )}
          {current && <div className="muted small">{current.issuer}</div>}
          {switchError && (
            <p role="alert" className="error small">
              {switchError}
            </p>
          )}
        </div>
      </nav>
      <main className="content">
        {!connection.online && (
          <div className="banner" role="alert">
            Can’t reach the Latchkey server{connection.message ? ` (${connection.message})` : ''}. Retrying
            {connection.retry_in ? ` in ${connection.retry_in} s` : ''}…
          </div>
        )}
        {screen === 'accounts' && (
          <Accounts
            data={accounts}
            onChanged={() => {
              void loadAccounts();
              setVersion((v) => v + 1);
            }}
          />
        )}
        {screen === 'devices' && (
          <Devices
            version={version}
            onShowFamily={(id) => {
              setFamilyOf(id);
              setTab('families');
            }}
          />
        )}
        {screen === 'families' && (
          <Families
            version={version}
            selected={familyOf}
            onSelect={setFamilyOf}
            onSignInAgain={() => setTab('accounts')}
            onSignOutEverywhere={async () => {
              await api.revokeOtherSessions();
              if (current) await api.signOut(current.id);
              await loadAccounts();
            }}
          />
        )}
        {screen === 'inspector' && <Inspector version={version} />}
        {screen === 'support' && <Support />}
      </main>
    </div>
  );
}

/** Ctrl+1, Ctrl+2, … for the sections in the sidebar's order, as far as there are digits. */
function shortcutOf(index: number): string | undefined {
  return index >= 0 && index < 9 ? `Control+${index + 1}` : undefined;
}

function Shortcuts({ tabs, onSwitch }: { tabs: Tab[]; onSwitch: (t: Tab) => void }) {
  useWindowKey((e) => {
    if (!e.ctrlKey || e.altKey || e.shiftKey || e.metaKey) return;
    const n = Number.parseInt(e.key, 10);
    const target = Number.isNaN(n) ? undefined : tabs[n - 1];
    if (target) {
      e.preventDefault();
      onSwitch(target);
    }
  });
  return null;
}

/**
 * Moves the focus to the new screen's heading when the user switches screens (not at start-up),
 * so that a screen reader reads where it is and Tab goes on from the top of that screen.
 */
function FocusHeading({ screen }: { screen: Tab }) {
  const previous = useRef(screen);
  useEffect(() => {
    if (previous.current === screen) return;
    previous.current = screen;
    const heading = document.querySelector<HTMLElement>('main.content h1');
    if (!heading) return;
    heading.tabIndex = -1;
    heading.focus();
  }, [screen]);
  return null;
}

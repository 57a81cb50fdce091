import { useCallback, useEffect, useState } from 'react';
import { listen } from '@tauri-apps/api/event';
import { api, isCommandError, messageOf, type Accounts as AccountsData, type Profile } from './api';
import { Accounts } from './screens/Accounts';
import { Devices } from './screens/Devices';
import { Families } from './screens/Families';
import { Inspector } from './screens/Inspector';
import { Support } from './screens/Support';

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

  const loadMe = useCallback(async () => {
    if (!current) {
      setMe(null);
      return;
    }
    try {
      setMe(await api.me());
      setConnection({ online: true });
    } catch (e) {
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

  useEffect(() => {
    void loadMe();
  }, [loadMe, current?.id]);

  // While the server is unreachable, try again every few seconds.
  useEffect(() => {
    if (connection.online) return;
    const t = setInterval(() => {
      void loadMe();
      setVersion((v) => v + 1);
    }, 5000);
    return () => clearInterval(t);
  }, [connection.online, loadMe]);

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
    ...(me?.role === 'support' ? [{ id: 'support' as Tab, label: 'Support', needsAccount: true }] : []),
    { id: 'accounts', label: 'Accounts', needsAccount: false },
  ];
  const screen = !current && shown !== 'accounts' ? 'accounts' : shown;

  return (
    <div className="app">
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
                disabled={t.needsAccount && !current}
                onClick={() => setTab(t.id)}
              >
                {t.label}
              </button>
            </li>
          ))}
        </ul>
        <div className="whoami">
          {current ? (
            <>
              <span className="dot online" aria-hidden="true" /> {current.label}
              <div className="muted small">{current.issuer}</div>
            </>
          ) : (
            <span className="muted">Not signed in</span>
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
        {screen === 'families' && <Families version={version} selected={familyOf} onSelect={setFamilyOf} />}
        {screen === 'inspector' && <Inspector version={version} />}
        {screen === 'support' && <Support />}
      </main>
    </div>
  );
}

import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { api, messageOf, type SessionView, type SessionFilter, type SessionList } from '../api';
import { Confirm } from '../components/Confirm';
import { Notice } from '../components/Notice';
import { PlatformIcon } from '../components/PlatformIcon';
import { Signals } from '../components/Signals';
import { absolute, relative, useNow } from '../time';
import { appOnDevice } from '../words';

interface Props {
  /** Bumped by the app when a live event arrives: reload. */
  version: number;
  onShowFamily: (session: string) => void;
}

const FILTERS: { value: SessionFilter; label: string }[] = [
  { value: 'active', label: 'Active' },
  { value: 'suspicious', label: 'Suspicious' },
  { value: 'all', label: 'All' },
  { value: 'revoked', label: 'Revoked' },
  { value: 'expired', label: 'Expired' },
];

/** Whether a copy of the session's refresh token would work anywhere else. */
function Binding({ s }: { s: SessionView }) {
  if (!s.key_thumbprint) {
    return <div className="binding unbound muted">Bearer session: not bound to a device key</div>;
  }
  const key = `key ${s.key_thumbprint.slice(0, 10)}…`;
  return (
    <div className="binding bound" title={`DPoP key thumbprint ${s.key_thumbprint}`}>
      <svg viewBox="0 0 16 16" aria-hidden="true" className="lock">
        <path d="M4.5 7V5a3.5 3.5 0 0 1 7 0v2h.5a1 1 0 0 1 1 1v6a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1zm1.5 0h4V5a2 2 0 0 0-4 0z" />
      </svg>
      {s.current
        ? `Bound to this device (${key}): a copied refresh token is useless without this device's key`
        : `Bound to that device's key (${key})`}
    </div>
  );
}

/**
 * One session. `onSignOut` offers "Sign out" on a live session other than the one this app uses
 * (that one signs out from Accounts); the button is secondary: the red one is in the dialog.
 */
export function SessionRow({ s, now, onSignOut, onFamily, children }: {
  s: SessionView;
  now: number;
  onSignOut?: (s: SessionView) => void;
  onFamily: (id: string) => void;
  /** More about the session, below its signals. */
  children?: ReactNode;
}) {
  return (
    <li className={`session ${s.suspicious ? 'suspicious' : ''} state-${s.state}`}>
      <div className="session-main">
        <div>
          <strong>{s.app}</strong>
          {s.device.app_version && <span className="muted version"> {s.device.app_version}</span>}
          {s.suspicious && <span className="badge warn">Suspicious</span>}
          <span className={`badge state-${s.state}`}>{s.state}</span>
        </div>
        <Binding s={s} />
        <div className="muted">
          Last active <time dateTime={s.last_used_at} title={absolute(s.last_used_at)}>{relative(s.last_used_at, now)}</time>
          {s.last_seen.ip ? ` from ${s.last_seen.ip}` : ''} · first seen{' '}
          <time dateTime={s.signed_in_at} title={absolute(s.signed_in_at)}>{relative(s.signed_in_at, now)}</time>
          {s.first_seen.ip ? ` from ${s.first_seen.ip}` : ''}
        </div>
        {s.state === 'active' && (
          <div className="muted">
            Stays signed in until <time dateTime={s.expires_at}>{absolute(s.expires_at)}</time> at the latest
          </div>
        )}
        {s.revoked && (
          <div className="muted">
            Revoked {relative(s.revoked.at, now)} by {s.revoked.by}
            {s.revoked.reason ? `: ${s.revoked.reason.replace(/_/g, ' ')}` : ''}
          </div>
        )}
        <Signals signals={s.signals} />
        {children}
      </div>
      <div className="card-actions">
        <button type="button" onClick={() => onFamily(s.id)}>
          Token family
        </button>
        {onSignOut && s.state === 'active' && !s.current && (
          <button type="button" onClick={() => onSignOut(s)}>
            Sign out
          </button>
        )}
      </div>
    </li>
  );
}

export function Devices({ version, onShowFamily }: Props) {
  const now = useNow();
  const [filter, setFilter] = useState<SessionFilter>('active');
  const [list, setList] = useState<SessionList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [asking, setAsking] = useState<SessionView | 'others' | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setList(await api.sessions(filter));
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    }
  }, [filter]);

  useEffect(() => {
    void load();
  }, [load, version]);

  async function revoke(target: SessionView | 'others') {
    setAsking(null);
    try {
      if (target === 'others') {
        const done = await api.revokeOtherSessions();
        setNotice(`Signed out ${done.revoked.length} other session${done.revoked.length === 1 ? '' : 's'}.`);
      } else {
        await api.revokeSession(target.id);
        setNotice(`Signed out ${appOnDevice(target)}.`);
      }
      await load();
    } catch (e) {
      setError(messageOf(e));
    }
  }

  return (
    <section aria-labelledby="devices-title">
      <div className="section-head">
        <h1 id="devices-title">Devices</h1>
        <button type="button" onClick={() => setAsking('others')}>
          Sign out all other devices
        </button>
      </div>
      {list && <p className="summary">{summary(list)}</p>}
      <div className="filters" role="group" aria-label="Show">
        {FILTERS.map((f) => (
          <button
            key={f.value}
            type="button"
            aria-pressed={filter === f.value}
            onClick={() => setFilter(f.value)}
          >
            {list ? `${f.label} ${list.counts[f.value]}` : f.label}
          </button>
        ))}
      </div>
      {notice && <Notice text={notice} />}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {list === null && !error && <p className="loading" role="status">Loading sessions…</p>}
      {list && list.devices.length === 0 && (
        <p className="empty">
          {filter === 'suspicious' ? 'Nothing suspicious. ' : ''}No sessions to show here.
        </p>
      )}
      {[...(list?.devices ?? [])].sort((a, b) => Number(b.current) - Number(a.current)).map((d) => (
        <article key={`${d.device.name}|${d.device.platform}`} className={`device ${d.current ? 'current' : ''}`}>
          <header>
            <PlatformIcon platform={d.device.platform} />
            <h2>{d.device.name ?? 'Unnamed device'}</h2>
            <span className="muted">{d.device.platform ?? 'unknown platform'}</span>
            {d.current && <span className="badge this">This device</span>}
          </header>
          <ul className="sessions">
            {d.sessions.map((s) => (
              <SessionRow key={s.id} s={s} now={now} onSignOut={setAsking} onFamily={onShowFamily} />
            ))}
          </ul>
        </article>
      ))}
      {asking && (
        <Confirm
          title={asking === 'others' ? 'Sign out all other devices?' : `Sign out ${appOnDevice(asking)}?`}
          confirmLabel={asking === 'others' ? 'Sign out others' : 'Sign out'}
          danger
          onCancel={() => setAsking(null)}
          onConfirm={() => void revoke(asking)}
        >
          {asking === 'others'
            ? 'Every session except this one ends now; those devices must sign in again.'
            : `${asking.device.name ?? 'That device'} will have to sign in again: its sign-in stops working now.`}
        </Confirm>
      )}
    </section>
  );
}

/** "3 devices · 1 needs attention": what the list holds, and how much of it is suspicious. */
function summary(list: SessionList): string {
  const devices = list.devices.length;
  const attention = list.devices.flatMap((d) => d.sessions).filter((s) => s.suspicious).length;
  const shown = `${devices} device${devices === 1 ? '' : 's'}`;
  if (attention === 0) return `${shown} · nothing needs attention`;
  return `${shown} · ${attention} need${attention === 1 ? 's' : ''} attention`;
}

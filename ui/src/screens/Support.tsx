import { useRef, useState, type FormEvent } from 'react';
import { useWindowKey } from '../keys';
import {
  api,
  messageOf,
  type AuditRecord,
  type Family,
  type SecurityEvent,
  type SessionList,
  type UserSummary,
} from '../api';
import { Confirm } from '../components/Confirm';
import { Notice } from '../components/Notice';
import { FamilyView } from '../components/FamilyView';
import { Copyable } from '../components/Copy';
import { absolute, relative, useNow, utc } from '../time';
import { SessionRow } from './Devices';
import { appOnDevice } from '../words';

type Asking = { kind: 'session'; id: string; label: string } | { kind: 'all'; user: UserSummary };

/** Support staff: find a user, inspect devices, families and events, revoke with a reason. */
export function Support() {
  const now = useNow();
  const [q, setQ] = useState('');
  const [users, setUsers] = useState<UserSummary[] | null>(null);
  const [user, setUser] = useState<UserSummary | null>(null);
  const [sessions, setSessions] = useState<SessionList | null>(null);
  const [events, setEvents] = useState<SecurityEvent[]>([]);
  const [family, setFamily] = useState<Family | null>(null);
  const [audit, setAudit] = useState<{ records: AuditRecord[]; next_before: number | null } | null>(null);
  const [asking, setAsking] = useState<Asking | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [view, setView] = useState<'users' | 'audit'>('users');
  const [action, setAction] = useState('');
  const searchInput = useRef<HTMLInputElement>(null);

  // Ctrl+F finds a user: the search this screen is for, rather than the web view's find bar.
  useWindowKey((e) => {
    if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === 'f') {
      e.preventDefault();
      setView('users');
      // The search field exists once the Users tab has rendered.
      setTimeout(() => {
        searchInput.current?.focus();
        searchInput.current?.select();
      });
    }
  });

  // Escape closes the family drawer (a dialog open above it takes its own Escape).
  useWindowKey((e) => {
    if (e.key === 'Escape') setFamily(null);
  }, family !== null && asking === null);

  async function run<T>(fn: () => Promise<T>): Promise<T | undefined> {
    try {
      setError(null);
      return await fn();
    } catch (e) {
      setError(messageOf(e));
      return undefined;
    }
  }

  async function search(e: FormEvent) {
    e.preventDefault();
    const found = await run(() => api.adminSearchUsers(q));
    if (found) setUsers(found.users);
  }

  async function open(u: UserSummary) {
    setUser(u);
    setFamily(null);
    const [list, ev] = await Promise.all([run(() => api.adminUserSessions(u.id)), run(() => api.adminEvents(u.id))]);
    if (list) setSessions(list);
    if (ev) setEvents(ev.events);
  }

  async function showFamily(session: string) {
    const f = await run(() => api.adminFamily(session));
    if (f) setFamily(f);
  }

  async function loadAudit(before?: number, only = action) {
    const page = await run(() => api.adminAudit({ user: user?.id, action: only || undefined, before }));
    if (page) setAudit(before && audit ? { records: [...audit.records, ...page.records], next_before: page.next_before } : page);
  }

  async function confirm(reason: string) {
    const a = asking;
    setAsking(null);
    if (!a) return;
    const done = await run<unknown>(() =>
      a.kind === 'session' ? api.adminRevokeSession(a.id, reason) : api.adminRevokeAll(a.user.id, reason),
    );
    if (done !== undefined) {
      setNotice(a.kind === 'session' ? `Signed out ${a.label}.` : `Signed out every session of ${a.user.email}.`);
      if (user) await open(user);
      if (family) await showFamily(family.session.id);
    }
  }

  return (
    <section aria-labelledby="support-title" className="support">
      <p className="support-bar" role="note">
        Support mode — every lookup and every action is audited with your name
      </p>
      <div className="section-head">
        <h1 id="support-title">Support</h1>
      </div>
      <div className="tabs" role="tablist" aria-label="Support">
        <button type="button" role="tab" aria-selected={view === 'users'} onClick={() => setView('users')}>
          Users
        </button>
        <button
          type="button"
          role="tab"
          aria-selected={view === 'audit'}
          onClick={() => {
            setView('audit');
            void loadAudit();
          }}
        >
          Audit log
        </button>
      </div>
      {notice && <Notice text={notice} />}
      {error && <p role="alert" className="error">{error}</p>}
      {view === 'users' && (
        <div role="tabpanel" aria-label="Users">
          <form className="search" onSubmit={search} role="search">
            <label className="field">
              <span>Find a user by email or id</span>
              <input
                ref={searchInput}
                value={q}
                onChange={(e) => setQ(e.target.value)}
                placeholder="alice@example.com"
                aria-keyshortcuts="Control+F"
              />
            </label>
            <button type="submit" className="primary">
              Search
            </button>
          </form>
          {users && users.length === 0 && <p className="empty">No user matches “{q}”.</p>}
          {users && users.length > 0 && (
            <ul className="picker horizontal" aria-label="Users found">
              {users.map((u) => (
                <li key={u.id}>
                  <button type="button" aria-current={u.id === user?.id} onClick={() => void open(u)}>
                    <strong>{u.email}</strong>
                    <span className="muted">
                      {u.role} · {u.live_sessions} live session{u.live_sessions === 1 ? '' : 's'}
                    </span>
                  </button>
                </li>
              ))}
            </ul>
          )}
          {user && sessions && (
            <div className="support-user">
              <div className="section-head">
                <div className="user-head">
                  <h2>{user.name || user.email}</h2>
                  <dl className="user-facts">
                    <div>
                      <dt>Email</dt>
                      <dd>{user.email}</dd>
                    </div>
                    <div>
                      <dt>User id</dt>
                      <dd>
                        <Copyable value={user.id} label="user id" />
                      </dd>
                    </div>
                    <div>
                      <dt>Created</dt>
                      <dd>{utc(user.created_at)}</dd>
                    </div>
                    <div>
                      <dt>Status</dt>
                      <dd>
                        {user.disabled ? 'Disabled' : 'Active'} · {user.role} · {user.live_sessions} live session
                        {user.live_sessions === 1 ? '' : 's'}
                      </dd>
                    </div>
                  </dl>
                </div>
                <button type="button" onClick={() => setAsking({ kind: 'all', user })}>
                  Sign out everywhere…
                </button>
              </div>
              {sessions.devices.length === 0 && <p className="empty">This user has no sessions.</p>}
              {sessions.devices.map((d) => (
                <article key={`${d.device.name}|${d.device.platform}`} className="device">
                  <header>
                    <h3>{d.device.name ?? 'Unnamed device'}</h3>
                    <span className="muted">{d.device.platform ?? ''}</span>
                  </header>
                  <ul className="sessions">
                    {d.sessions.map((s) => (
                      <SessionRow
                        key={s.id}
                        s={s}
                        now={now}
                        onFamily={(id) => void showFamily(id)}
                        onSignOut={(x) => setAsking({ kind: 'session', id: x.id, label: appOnDevice(x) })}
                      >
                        <div className="muted small">
                          Session <Copyable value={s.id} label="session id" />
                        </div>
                      </SessionRow>
                    ))}
                  </ul>
                </article>
              ))}
              <h3>Recent events</h3>
              {events.length === 0 ? (
                <p className="empty">No events.</p>
              ) : (
                <ol className="events">
                  {events.map((e) => (
                    <li key={e.id} className={`sev-${e.severity}`}>
                      <time dateTime={e.at} title={absolute(e.at)}>{relative(e.at, now)}</time> {e.summary}
                      {e.ip ? <span className="muted"> · {e.ip}</span> : null}
                    </li>
                  ))}
                </ol>
              )}
            </div>
          )}
        </div>
      )}
      {view === 'audit' && (
        <div role="tabpanel" aria-label="Audit log" className="audit">
          <div className="section-head">
            <h2>Audit log{user ? ` for ${user.email}` : ''}</h2>
            <label className="field inline">
              <span>Action</span>
              <select
                value={action}
                onChange={(e) => {
                  setAction(e.target.value);
                  void loadAudit(undefined, e.target.value);
                }}
              >
                {ACTIONS.map(([value, text]) => (
                  <option key={value} value={value}>
                    {text}
                  </option>
                ))}
              </select>
            </label>
          </div>
          {audit && audit.records.length === 0 && <p className="empty">No records.</p>}
          {audit && audit.records.length > 0 && (
            <table>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">When (UTC)</th>
                  <th scope="col">Who</th>
                  <th scope="col">Action</th>
                  <th scope="col">Reason</th>
                  <th scope="col">From</th>
                </tr>
              </thead>
              <tbody>
                {audit.records.map((r) => (
                  <tr key={r.seq}>
                    <td>{r.seq}</td>
                    <td>
                      <time dateTime={r.at}>{utc(r.at)}</time>
                    </td>
                    <td>{r.actor_email ?? r.actor_kind}</td>
                    <td>
                      <code>{r.action}</code>
                    </td>
                    <td>{r.reason ?? ''}</td>
                    <td>{r.ip ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {audit && audit.next_before !== null && (
            <button type="button" onClick={() => void loadAudit(audit.next_before ?? undefined)}>
              Older records
            </button>
          )}
        </div>
      )}
      {family && (
        <aside key={family.session.id} className="drawer" aria-label={`Sign-in of ${appOnDevice(family.session)}`}>
          <div className="drawer-head">
            {/* Opening a family takes the focus into the drawer (each family mounts its own). */}
            <button type="button" autoFocus onClick={() => setFamily(null)}>
              Close
            </button>
          </div>
          <FamilyView
            family={family}
            onSignOut={() => setAsking({ kind: 'session', id: family.session.id, label: appOnDevice(family.session) })}
          />
        </aside>
      )}
      {asking && (
        <Confirm
          title={asking.kind === 'session' ? `Sign out ${asking.label}?` : `Sign out every session of ${asking.user.email}?`}
          confirmLabel="Sign out"
          danger
          reasonLabel="Reason (kept in the audit log)"
          onCancel={() => setAsking(null)}
          onConfirm={(reason) => void confirm(reason)}
        >
          {asking.kind === 'session'
            ? 'The session ends now: the user will have to sign in again on that device.'
            : `Every device of ${asking.user.email} will have to sign in again.`}
        </Confirm>
      )}
    </section>
  );
}

const ACTIONS: [string, string][] = [
  ['', 'Every action'],
  ['admin.session.revoke', 'A session signed out by staff'],
  ['admin.user.revoke_all', 'Every session of a user signed out by staff'],
  ['admin.users.search', 'User searches'],
  ['admin.user.sessions.read', 'Sessions viewed'],
  ['admin.session.family.read', 'Sign-in histories viewed'],
  ['admin.events.read', 'Events viewed'],
  ['admin.audit.read', 'Audit log viewed'],
  ['event.reuse_detected', 'Copies of a sign-in detected'],
  ['event.session_revoked', 'Sessions signed out'],
  ['event.signed_in', 'Sign-ins'],
  ['event.signin_failed', 'Failed sign-ins'],
];

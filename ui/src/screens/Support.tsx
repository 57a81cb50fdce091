import { useState, type FormEvent } from 'react';
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
import { FamilyView } from '../components/FamilyView';
import { absolute, relative, useNow } from '../time';
import { SessionRow } from './Devices';

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

  async function loadAudit(before?: number) {
    const page = await run(() => api.adminAudit({ user: user?.id, before }));
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
      setNotice(a.kind === 'session' ? `Revoked ${a.label}.` : `Revoked every session of ${a.user.email}.`);
      if (user) await open(user);
      if (family) await showFamily(family.session.id);
    }
  }

  return (
    <section aria-labelledby="support-title">
      <h1 id="support-title">Support</h1>
      <p className="muted">Every lookup and every action here is written to the audit log with your name.</p>
      <form className="search" onSubmit={search} role="search">
        <label className="field">
          <span>Find a user by email or id</span>
          <input value={q} onChange={(e) => setQ(e.target.value)} placeholder="alice@example.com" />
        </label>
        <button type="submit" className="primary">
          Search
        </button>
        <button type="button" onClick={() => void loadAudit()}>
          Audit log
        </button>
      </form>
      {notice && <p role="status" className="notice">{notice}</p>}
      {error && <p role="alert" className="error">{error}</p>}
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
            <h2>{user.email}</h2>
            <button type="button" className="danger" onClick={() => setAsking({ kind: 'all', user })}>
              Revoke all sessions…
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
                    onRevoke={(x) => setAsking({ kind: 'session', id: x.id, label: `${x.app} on ${x.device.name ?? 'an unnamed device'}` })}
                  />
                ))}
              </ul>
            </article>
          ))}
          {family && (
            <FamilyView
              family={family}
              onKill={() => setAsking({ kind: 'session', id: family.session.id, label: `${family.session.app} on ${family.session.device.name ?? 'an unnamed device'}` })}
            />
          )}
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
      {audit && (
        <div className="audit">
          <h2>Audit log{user ? ` for ${user.email}` : ''}</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">When</th>
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
                  <td title={absolute(r.at)}>{relative(r.at, now)}</td>
                  <td>{r.actor_kind}{r.actor_id ? ` ${r.actor_id.slice(0, 8)}` : ''}</td>
                  <td><code>{r.action}</code></td>
                  <td>{r.reason ?? ''}</td>
                  <td>{r.ip ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {audit.next_before !== null && (
            <button type="button" onClick={() => void loadAudit(audit.next_before ?? undefined)}>
              Older records
            </button>
          )}
        </div>
      )}
      {asking && (
        <Confirm
          title={asking.kind === 'session' ? `Revoke ${asking.label}?` : `Revoke every session of ${asking.user.email}?`}
          confirmLabel="Revoke"
          danger
          reasonLabel="Reason (kept in the audit log)"
          onCancel={() => setAsking(null)}
          onConfirm={(reason) => void confirm(reason)}
        >
          {asking.kind === 'session'
            ? 'The session ends now; the user must sign in again on that device.'
            : 'Every device of this user is signed out now.'}
        </Confirm>
      )}
    </section>
  );
}

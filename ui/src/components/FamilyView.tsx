import type { Family } from '../api';
import { Chain } from './Chain';
import { Signals } from './Signals';
import { absolute, relative, useNow } from '../time';

interface Props {
  family: Family;
  onKill?: () => void;
  onAcknowledge?: () => void;
  onOlder?: () => void;
}

/** One session's family: its state, its signals in plain words, the chain, the event log. */
export function FamilyView({ family, onKill, onAcknowledge, onOlder }: Props) {
  const now = useNow();
  const s = family.session;
  return (
    <div className={`family ${s.suspicious ? 'suspicious' : ''}`}>
      <header className="section-head">
        <div>
          <h2>
            {s.app} on {s.device.name ?? 'an unnamed device'}
          </h2>
          <p className="muted">
            Signed in {relative(s.signed_in_at, now)} · {s.generation} token
            {s.generation === 1 ? '' : 's'} so far · {s.state}
            {s.revoked ? ` (${(s.revoked.reason ?? '').replace(/_/g, ' ')}, by ${s.revoked.by})` : ''}
          </p>
        </div>
        <div className="card-actions">
          {onAcknowledge && s.suspicious && (
            <button type="button" onClick={onAcknowledge}>
              This was me
            </button>
          )}
          {onKill && s.state === 'active' && (
            <button type="button" className="danger" onClick={onKill}>
              Kill family
            </button>
          )}
        </div>
      </header>
      {s.suspicious && <p className="warn-text">This family looks like someone else may hold its token.</p>}
      <Signals signals={s.signals} />
      <Chain family={family} />
      {family.next_before !== null && onOlder && (
        <button type="button" onClick={onOlder}>
          Show older generations
        </button>
      )}
      <h3>What happened</h3>
      {family.events.length === 0 ? (
        <p className="empty">No events.</p>
      ) : (
        <ol className="events">
          {family.events.map((e) => (
            <li key={e.id} className={`sev-${e.severity}`}>
              <time dateTime={e.at} title={absolute(e.at)}>{relative(e.at, now)}</time> {e.summary}
              {e.ip ? <span className="muted"> · {e.ip}</span> : null}
              {e.user_agent ? <span className="muted"> · {e.user_agent}</span> : null}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

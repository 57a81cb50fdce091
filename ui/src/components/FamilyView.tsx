import type { Family } from '../api';
import { Chain } from './Chain';
import { IncidentCard, incidentOf } from './Incident';
import { Signals } from './Signals';
import { absolute, relative, useNow } from '../time';
import { STATE_WORDS, appOnDevice } from '../words';

interface Props {
  family: Family;
  /** The session runs on the device this app runs on. */
  onThisDevice?: boolean;
  /** Ends this session (confirmed by the caller). */
  onSignOut?: () => void;
  onAcknowledge?: () => void;
  onSignInAgain?: () => void;
  onSignOutEverywhere?: () => void;
  onOlder?: () => void;
}

/**
 * One session's family. An incident (a reuse, a key mismatch, a high signal) leads with its
 * verdict and decisions, and the token chain moves under "Technical details"; otherwise the
 * chain is the view.
 */
export function FamilyView({ family, onThisDevice = false, onSignOut, onAcknowledge, onSignInAgain, onSignOutEverywhere, onOlder }: Props) {
  const now = useNow();
  const s = family.session;
  const incident = incidentOf(s, family.events);
  const live = s.state === 'active';
  const technical = (
    <>
      <Signals signals={s.signals} />
      <Chain family={family} />
      {family.next_before !== null && onOlder && (
        <button type="button" onClick={onOlder}>
          Show older tokens
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
    </>
  );
  return (
    <div className={`family ${incident ? 'has-incident' : ''} ${s.suspicious ? 'suspicious' : ''}`}>
      <header className="section-head">
        <div>
          <h2>
            {appOnDevice(s)}
          </h2>
          <p className="muted">
            Signed in {relative(s.signed_in_at, now)} · {STATE_WORDS[s.state]}
          </p>
        </div>
        {!incident && (
          <div className="card-actions">
            {onAcknowledge && s.suspicious && live && (
              <button type="button" onClick={onAcknowledge}>
                This was me
              </button>
            )}
            {onSignOut && live && (
              <button type="button" onClick={onSignOut}>
                Sign out
              </button>
            )}
          </div>
        )}
      </header>
      {incident ? (
        <>
          <IncidentCard
            session={s}
            incident={incident}
            onThisDevice={onThisDevice}
            onSignInAgain={onSignInAgain}
            onSignOutEverywhere={onSignOutEverywhere}
            onSignOut={onSignOut}
            onAcknowledge={onAcknowledge}
          />
          <details className="technical">
            <summary>Technical details</summary>
            <p className="muted">
              {s.generation} refresh token{s.generation === 1 ? '' : 's'} in this family
              {s.revoked ? ` · ended by ${s.revoked.by}: ${(s.revoked.reason ?? '').replace(/_/g, ' ')}` : ''}
            </p>
            {technical}
          </details>
        </>
      ) : (
        <>
          {s.suspicious && <p className="warn-text">Someone else may hold a copy of this sign-in.</p>}
          {technical}
        </>
      )}
    </div>
  );
}

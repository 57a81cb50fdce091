import type { SecurityEvent, SessionView } from '../api';
import { absolute, clockTime } from '../time';

/** What went wrong with a session, from the one event that tells it. */
export interface Incident {
  /** `reuse`: a used refresh token came back; `key_mismatch`: a copy was presented without the
   *  device's key; `signal`: a high-severity warning on a session that may still be live. */
  kind: 'reuse' | 'key_mismatch' | 'signal';
  event: SecurityEvent;
}

/**
 * The incident of a session, if it has one: revoked for reuse or for a key mismatch, or carrying
 * an unacknowledged high signal. `events` are the session's events, newest first.
 */
export function incidentOf(s: SessionView, events: SecurityEvent[]): Incident | null {
  const newest = (kind: SecurityEvent['kind']) => events.find((e) => e.kind === kind);
  const reuse = newest('reuse_detected');
  if (reuse && (s.revoked?.reason === 'reuse_detected' || s.state === 'revoked')) return { kind: 'reuse', event: reuse };
  const mismatch = newest('key_mismatch');
  if (mismatch) return { kind: 'key_mismatch', event: mismatch };
  const high = s.signals.find((e) => e.severity === 'high');
  if (high && s.state === 'active') return { kind: 'signal', event: high };
  return null;
}

/** The one sentence that says what happened and what Latchkey did. */
export function verdict(s: SessionView, incident: Incident): string {
  const e = incident.event;
  const software = e.user_agent ?? 'unknown software';
  const from = e.ip ? ` at ${e.ip}` : '';
  const ended = s.revoked ? ` and signed this session out at ${clockTime(s.revoked.at)}` : '';
  switch (incident.kind) {
    case 'reuse':
      return `Someone else used a copy of this sign-in from ${software}${from}. Latchkey blocked it${ended}.`;
    case 'key_mismatch':
      return `Someone tried to use a copy of this sign-in from ${software}${from}, without this device's key. Latchkey refused it${ended}.`;
    case 'signal':
      return `This sign-in may be in someone else's hands: ${e.summary.replace(/\.$/, '')}.`;
  }
}

function whatLatchkeyDid(s: SessionView, incident: Incident): string {
  if (s.state !== 'revoked') {
    return incident.kind === 'key_mismatch'
      ? 'Refused the copy: without this device’s key it is useless. This session is still signed in.'
      : 'Nothing yet: this session is still signed in.';
  }
  return 'Ended this sign-in: neither your app nor the copy can use it any more.';
}

interface Props {
  session: SessionView;
  incident: Incident;
  /** This session belongs to the device this app runs on. */
  onThisDevice: boolean;
  onSignInAgain?: () => void;
  onSignOutEverywhere?: () => void;
  onSignOut?: () => void;
  onAcknowledge?: () => void;
}

/**
 * An incident first: the verdict in one sentence, the other party in plain text, what Latchkey
 * did, and the decisions. The token chain is for the technical details below it.
 */
export function IncidentCard({ session: s, incident, onThisDevice, onSignInAgain, onSignOutEverywhere, onSignOut, onAcknowledge }: Props) {
  const e = incident.event;
  const device = s.device.name ?? 'this device';
  const live = s.state === 'active';
  return (
    <section className="incident" aria-labelledby="incident-verdict">
      <p id="incident-verdict" className="verdict">
        {verdict(s, incident)}
      </p>
      <dl className="incident-facts">
        <div>
          <dt>Other software</dt>
          <dd>{e.user_agent ?? 'Not reported'}</dd>
        </div>
        <div>
          <dt>From</dt>
          <dd>{e.ip ?? 'Unknown address'}</dd>
        </div>
        <div>
          <dt>When</dt>
          <dd>
            <time dateTime={e.at}>{absolute(e.at)}</time>
          </dd>
        </div>
        <div>
          <dt>Your app</dt>
          <dd>
            {s.app}
            {s.device.app_version ? ` ${s.device.app_version}` : ''} on {device}
          </dd>
        </div>
        <div>
          <dt>What Latchkey did</dt>
          <dd>{whatLatchkeyDid(s, incident)}</dd>
        </div>
      </dl>
      <div className="decisions">
        {!live && onThisDevice && onSignInAgain && (
          <button type="button" className="primary" onClick={onSignInAgain}>
            Sign in again on {device}
          </button>
        )}
        {!live && !onThisDevice && <p className="muted">{device} will ask to sign in again the next time it is used.</p>}
        {live && onSignOut && (
          <button type="button" className="primary" onClick={onSignOut}>
            Sign out {device}
          </button>
        )}
        {onSignOutEverywhere && (
          <button type="button" onClick={onSignOutEverywhere}>
            Sign out everywhere
          </button>
        )}
        {live && onAcknowledge && (
          <button type="button" onClick={onAcknowledge}>
            This was me
          </button>
        )}
      </div>
    </section>
  );
}

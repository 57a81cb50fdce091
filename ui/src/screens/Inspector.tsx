import { useCallback, useEffect, useRef, useState } from 'react';
import { api, messageOf, type TokenInfo } from '../api';
import { absolute, fromEpoch, useNow } from '../time';
import { Copyable } from '../components/Copy';

/** The current access token, decoded, with its countdown. The token itself is never here. */
export function Inspector({ version }: { version: number }) {
  const now = useNow(1000);
  const [info, setInfo] = useState<TokenInfo | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      setInfo(await api.tokenInfo());
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load, version]);
  const left = info ? info.expires_at - Math.floor(now / 1000) : 0;
  // Fetch the refreshed token once this one has run out: once per token, so that a token that
  // comes back already expired (a clock ahead of the server's) is shown, not fetched in a loop.
  const reloadedFor = useRef<number | null>(null);
  useEffect(() => {
    if (!info || left > 0 || reloadedFor.current === info.expires_at) return;
    reloadedFor.current = info.expires_at;
    void load();
  }, [info, left, load]);
  return (
    <section aria-labelledby="inspector-title">
      <div className="section-head">
        <h1 id="inspector-title">Token inspector</h1>
        <button type="button" onClick={() => void load()}>
          Reload
        </button>
      </div>
      <p className="muted">
        {info ? (
          <>
            The access token this app uses now for <strong>{info.account}</strong> at {info.issuer},
            decoded.
          </>
        ) : (
          'The access token this app uses now, decoded.'
        )}{' '}
        The refresh token stays in the keychain and is never shown.
      </p>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {!info && !error && <p className="loading" role="status">Loading…</p>}
      {info && (
        <>
          {/* The countdown changes every second and is not a live region: screen readers hear
              only the moments that matter, one minute left and expiry, from the one below. */}
          <p className="countdown">
            {left > 0 ? (
              <>
                Expires in <strong>{Math.floor(left / 60)}:{String(left % 60).padStart(2, '0')}</strong>
              </>
            ) : (
              'Expired: a fresh one is fetched on next use'
            )}
          </p>
          <p className="visually-hidden" role="status" data-testid="countdown-announcement">
            {announcement(left)}
          </p>
          <dl className="claims">
            {info.claims
              ? Object.entries(info.claims).map(([k, v]) => {
                  const text = typeof v === 'string' ? v : JSON.stringify(v);
                  return (
                    <div key={k}>
                      <dt>
                        {CLAIMS[k] ?? k} <code className="muted small">{k}</code>
                      </dt>
                      <dd>
                        <Copyable value={text} label={CLAIMS[k] ?? k} />
                        {TIMES.has(k) && typeof v === 'number' && (
                          <span className="muted"> ({absolute(fromEpoch(v))})</span>
                        )}
                      </dd>
                    </div>
                  );
                })
              : <p>This server issues opaque access tokens: there is nothing to decode.</p>}
          </dl>
          {info.header && (
            <p className="muted">
              Signed with <code>{String(info.header.alg)}</code>, key <code>{String(info.header.kid)}</code>.
            </p>
          )}
        </>
      )}
    </section>
  );
}

/** What the live region says: the remaining time only when it crosses one minute, and expiry. */
function announcement(left: number): string {
  if (left <= 0) return 'The access token has expired: a fresh one is fetched on next use.';
  if (left <= 60) return 'The access token expires in less than a minute.';
  return '';
}

/** What each registered claim (RFC 7519 §4.1, RFC 9068, RFC 9449, OIDC) means, in plain words. */
const CLAIMS: Record<string, string> = {
  iss: 'Issued by',
  sub: 'Your user id',
  aud: 'Meant for',
  exp: 'Expires',
  iat: 'Issued at',
  nbf: 'Not valid before',
  jti: 'Token id',
  client_id: 'App',
  scope: 'What it allows',
  sid: 'Session',
  auth_time: 'Signed in at',
  cnf: "Bound to this device's key",
  email: 'Email',
  name: 'Name',
  role: 'Role',
};

const TIMES = new Set(['exp', 'iat', 'nbf', 'auth_time']);

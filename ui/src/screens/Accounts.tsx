import { useState, type FormEvent } from 'react';
import { api, messageOf, type Account, type Accounts as AccountsData, type CodeShown } from '../api';
import { Confirm } from '../components/Confirm';
import { Copyable } from '../components/Copy';
import { clockTime, fromEpoch } from '../time';

interface Props {
  data: AccountsData;
  onChanged: () => void;
}

const STATE_TEXT: Record<Account['state'], string> = {
  signed_in: 'Signed in',
  signed_out: 'Signed out',
  no_token: 'Token missing from the keychain: sign in again',
};

export function Accounts({ data, onChanged }: Props) {
  const [issuer, setIssuer] = useState('');
  const [clientId, setClientId] = useState('');
  /** A sign-in in progress: in the system browser, or with a code entered elsewhere. */
  const [signingIn, setSigningIn] = useState<'browser' | 'code' | null>(null);
  const [code, setCode] = useState<CodeShown | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [warning, setWarning] = useState<string | null>(null);
  const [asking, setAsking] = useState<{ kind: 'sign_out' | 'forget'; account: Account } | null>(null);

  /** Signs in through the system browser, or with a code: a new account, or one again. */
  async function signIn(server: string, client?: string, how: 'browser' | 'code' = 'browser') {
    setError(null);
    setWarning(null);
    setSigningIn(how);
    try {
      if (how === 'code') await api.addAccountWithCode(server, client, setCode);
      else await api.addAccount(server, client);
      onChanged();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setSigningIn(null);
      setCode(null);
    }
  }

  function add(e: FormEvent) {
    e.preventDefault();
    void signIn(issuer.trim(), clientId.trim() || undefined);
  }

  function addWithCode() {
    const form = document.querySelector<HTMLFormElement>('form.add-account');
    if (form && !form.reportValidity()) return;
    void signIn(issuer.trim(), clientId.trim() || undefined, 'code');
  }

  async function act(fn: () => Promise<unknown>) {
    setError(null);
    setWarning(null);
    try {
      await fn();
      onChanged();
    } catch (err) {
      setError(messageOf(err));
    }
  }

  /** Signs out at the server; a sign-out the server did not confirm stays visible. */
  async function signOut(account: Account) {
    const confirmed = await api.signOut(account.id);
    if (!confirmed) {
      setWarning(
        `${account.issuer} did not confirm the sign-out of ${account.label}: the token is deleted here, but the session may still be live there. Sign it out from another device's Devices screen.`,
      );
    }
  }

  return (
    <section aria-labelledby="accounts-title">
      <h1 id="accounts-title">Accounts</h1>
      <p className="muted">
        Tokens are kept in the {data.keychain}
        {data.keychain_persists ? '.' : ', which forgets them when you log out of this computer.'}
      </p>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {warning && (
        <p role="alert" className="banner">
          {warning}
        </p>
      )}
      {signingIn === 'browser' && (
        <div className="progress" role="status">
          <span className="spinner" aria-hidden="true" /> Waiting for you to sign in in your browser…
          <button type="button" onClick={() => void api.cancelSignIn()}>
            Cancel
          </button>
        </div>
      )}
      {signingIn === 'code' && (
        <section className="code-panel" aria-labelledby="code-title">
          <h2 id="code-title">Sign in with a code</h2>
          {code ? (
            <div className="code-body">
              <div>
                <p>On any device with a browser, open</p>
                <Copyable value={code.verification_uri} label="the sign-in address" />
                <p>and enter this code:</p>
                <p className="user-code" aria-label={`Code: ${code.user_code.split('').join(' ')}`}>
                  {code.user_code}
                </p>
                <p className="muted small">
                  The code works until {clockTime(fromEpoch(code.expires_at))}.
                  Only ever enter it on Latchkey’s own page.
                </p>
              </div>
              {code.qr && (
                <svg
                  className="qr"
                  viewBox={`-4 -4 ${code.qr.size + 8} ${code.qr.size + 8}`}
                  role="img"
                  aria-label="QR code of the sign-in address with the code in it: scan it with a phone's camera"
                  shapeRendering="crispEdges"
                >
                  <rect x={-4} y={-4} width={code.qr.size + 8} height={code.qr.size + 8} fill="#fff" />
                  <path d={code.qr.d} fill="#000" />
                </svg>
              )}
            </div>
          ) : (
            <p>Asking {issuer || 'the server'} for a code…</p>
          )}
          <div className="progress" role="status">
            <span className="spinner" aria-hidden="true" /> Waiting for you to approve the sign-in…
            <button type="button" onClick={() => void api.cancelSignIn()}>
              Cancel
            </button>
          </div>
        </section>
      )}
      {data.accounts.length === 0 ? (
        <p className="empty">No accounts yet. Add one with its server address below.</p>
      ) : (
        <ul className="cards" aria-label="Accounts">
          {data.accounts.map((a) => (
            <li key={a.id} className={`card ${a.current ? 'current' : ''}`}>
              <div className="card-main">
                <div>
                  <strong>{a.label}</strong>
                  {a.current && <span className="badge this">Current</span>}
                </div>
                <div className="muted">
                  {a.issuer} · {a.client_id}
                </div>
                <div className={`state state-${a.state}`}>
                  {STATE_TEXT[a.state]}
                  {a.reason ? `: ${a.reason}` : ''}
                </div>
                {a.state === 'signed_in' && (
                  <div className="muted">
                    {a.device_key
                      ? `Bound to this device: key ${a.device_key.slice(0, 10)}… is kept in the ${data.keychain} and never sent`
                      : 'Bearer session: the server does not bind tokens to this device'}
                  </div>
                )}
              </div>
              <div className="card-actions">
                {!a.current && (
                  <button type="button" onClick={() => act(() => api.switchAccount(a.id))}>
                    Switch to
                  </button>
                )}
                {a.state === 'signed_in' ? (
                  <button type="button" onClick={() => setAsking({ kind: 'sign_out', account: a })}>
                    Sign out
                  </button>
                ) : (
                  <button
                    type="button"
                    disabled={signingIn !== null}
                    onClick={() => void signIn(a.issuer, a.client_id === 'latchkey-desktop' ? undefined : a.client_id)}
                  >
                    Sign in again
                  </button>
                )}
                <button type="button" className="danger-text" onClick={() => setAsking({ kind: 'forget', account: a })}>
                  Forget
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}

      <form className="add-account" onSubmit={add} aria-labelledby="add-title">
        <h2 id="add-title">Add an account</h2>
        <div className="field">
          <label htmlFor="issuer">Server address</label>
          <p id="issuer-hint" className="hint">
            The address of your Latchkey server, as your administrator gave it.
          </p>
          <input
            id="issuer"
            type="url"
            required
            value={issuer}
            onChange={(e) => setIssuer(e.target.value)}
            placeholder="https://login.example.com"
            aria-describedby="issuer-hint"
            disabled={signingIn !== null}
          />
        </div>
        <details>
          <summary>Advanced</summary>
          <label className="field">
            <span>Client id (default: latchkey-desktop)</span>
            <input value={clientId} onChange={(e) => setClientId(e.target.value)} disabled={signingIn !== null} />
          </label>
        </details>
        {!signingIn && (
          <div className="form-actions">
            <button type="submit" className="primary">
              Sign in with browser
            </button>
            <button type="button" onClick={addWithCode} aria-describedby="code-hint">
              Sign in with a code instead
            </button>
            <p id="code-hint" className="hint">
              If the browser cannot open here, or cannot reach this computer, sign in with a code in a browser on
              any other device.
            </p>
          </div>
        )}
      </form>

      {asking && (
        <Confirm
          title={asking.kind === 'sign_out' ? `Sign out ${asking.account.label}?` : `Forget ${asking.account.label}?`}
          confirmLabel={asking.kind === 'sign_out' ? 'Sign out' : 'Forget'}
          danger
          onCancel={() => setAsking(null)}
          onConfirm={() => {
            const { kind, account } = asking;
            setAsking(null);
            void act(async () => {
              // Forgetting a signed-in account signs it out first: the server ends the session
              // rather than leaving a live refresh token behind with nobody to use it.
              if (kind === 'sign_out' || account.state === 'signed_in') await signOut(account);
              if (kind === 'forget') await api.forgetAccount(account.id);
            });
          }}
        >
          {asking.kind === 'sign_out'
            ? 'The server ends this session and the token is deleted from this computer.'
            : asking.account.state === 'signed_in'
              ? 'The server ends this session, then the account and its token are removed from this computer.'
              : 'The account is removed from this computer.'}
        </Confirm>
      )}
    </section>
  );
}

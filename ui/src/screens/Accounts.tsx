import { useState, type FormEvent } from 'react';
import { api, messageOf, type Account, type Accounts as AccountsData } from '../api';
import { Confirm } from '../components/Confirm';

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
  const [signingIn, setSigningIn] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [warning, setWarning] = useState<string | null>(null);
  const [asking, setAsking] = useState<{ kind: 'sign_out' | 'forget'; account: Account } | null>(null);

  /** Signs in through the system browser: a new account, or an existing one again. */
  async function signIn(server: string, client?: string) {
    setError(null);
    setWarning(null);
    setSigningIn(true);
    try {
      await api.addAccount(server, client);
      onChanged();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setSigningIn(false);
    }
  }

  function add(e: FormEvent) {
    e.preventDefault();
    void signIn(issuer.trim(), clientId.trim() || undefined);
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
      {signingIn && (
        <div className="progress" role="status">
          <span className="spinner" aria-hidden="true" /> Waiting for you to sign in in your browser…
          <button type="button" onClick={() => void api.cancelSignIn()}>
            Cancel
          </button>
        </div>
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
                    disabled={signingIn}
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
            disabled={signingIn}
          />
        </div>
        <details>
          <summary>Advanced</summary>
          <label className="field">
            <span>Client id (default: latchkey-desktop)</span>
            <input value={clientId} onChange={(e) => setClientId(e.target.value)} disabled={signingIn} />
          </label>
        </details>
        {!signingIn && (
          <button type="submit" className="primary">
            Sign in with browser
          </button>
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

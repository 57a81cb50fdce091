import { useCallback, useEffect, useRef, useState } from 'react';
import { api, messageOf, type Family, type SessionView } from '../api';
import { Confirm } from '../components/Confirm';
import { FamilyView } from '../components/FamilyView';
import { absolute } from '../time';
import { STATE_WORDS, appOnDevice } from '../words';

interface Props {
  version: number;
  selected: string | null;
  onSelect: (session: string) => void;
  /** Sign this app in again (its own session was ended). */
  onSignInAgain: () => void;
  /** Sign out every session of the account, this app's included. */
  onSignOutEverywhere: () => Promise<void>;
}

type Asking = 'sign-out' | 'everywhere';

/** Every session's token family; suspicious ones first. */
export function Families({ version, selected, onSelect, onSignInAgain, onSignOutEverywhere }: Props) {
  const [sessions, setSessions] = useState<SessionView[] | null>(null);
  const [family, setFamily] = useState<Family | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [asking, setAsking] = useState<Asking | null>(null);

  /** The session chosen now: an answer for one chosen before it is not shown. */
  const chosen = useRef(selected);
  chosen.current = selected;

  const loadList = useCallback(async () => {
    try {
      const list = await api.sessions('all');
      const all = list.devices.flatMap((d) => d.sessions);
      all.sort((a, b) => Number(b.suspicious) - Number(a.suspicious) || Number(b.state === 'active') - Number(a.state === 'active'));
      setSessions(all);
      setError(null);
      // Nothing chosen yet, or a session of another account (after a switch): the first one.
      // Chosen as of now, not as of the request: a click meanwhile stands.
      const now = chosen.current;
      if ((!now || !all.some((x) => x.id === now)) && all[0]) onSelect(all[0].id);
    } catch (e) {
      setError(messageOf(e));
    }
  }, [onSelect]);

  const loadFamily = useCallback(async () => {
    if (!selected) return;
    try {
      const loaded = await api.family(selected);
      if (chosen.current !== selected) return;
      setFamily(loaded);
      setError(null);
    } catch (e) {
      if (chosen.current !== selected) return;
      setError(messageOf(e));
    }
  }, [selected]);

  useEffect(() => {
    void loadList();
  }, [loadList, version]);
  useEffect(() => {
    void loadFamily();
  }, [loadFamily, version]);

  async function act(fn: () => Promise<unknown>) {
    try {
      await fn();
      await Promise.all([loadList(), loadFamily()]);
    } catch (e) {
      setError(messageOf(e));
    }
  }

  const mine = sessions?.find((x) => x.current)?.device;
  const theirs = family?.session.device;
  const onThisDevice = !!mine && !!theirs && mine.name === theirs.name && mine.platform === theirs.platform;

  return (
    <section aria-labelledby="families-title" className="split">
      <nav aria-labelledby="families-title" className="list-pane">
        <h1 id="families-title">Token families</h1>
        {sessions === null && !error && <p className="loading" role="status">Loading…</p>}
        {sessions?.length === 0 && <p className="empty">No sessions yet.</p>}
        <ul className="picker">
          {sessions?.map((s) => (
            <li key={s.id}>
              <button
                type="button"
                aria-current={s.id === selected}
                className={`${s.suspicious ? 'suspicious' : ''} state-${s.state}`}
                onClick={() => onSelect(s.id)}
              >
                <strong>{s.device.name ?? 'Unnamed device'}</strong>
                <span className="muted facts">
                  <span>{s.app}</span> · <span>started {absolute(s.signed_in_at)}</span> ·{' '}
                  <span>{STATE_WORDS[s.state]}</span>
                  {s.current && (
                    <>
                      {' '}
                      · <span>this app</span>
                    </>
                  )}
                </span>
                {s.suspicious && <span className="badge warn">Suspicious</span>}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      <div className="detail-pane">
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        {family && family.session.id === selected ? (
          <FamilyView
            family={family}
            onThisDevice={onThisDevice}
            onSignOut={() => setAsking('sign-out')}
            onSignInAgain={onSignInAgain}
            onSignOutEverywhere={() => setAsking('everywhere')}
            onAcknowledge={() => void act(() => api.acknowledge(family.session.id))}
            onOlder={
              family.next_before === null
                ? undefined
                : () =>
                    void api
                      .family(family.session.id, family.next_before ?? undefined)
                      .then((older) => setFamily({ ...older, generations: [...family.generations, ...older.generations] }))
                      .catch((e: unknown) => setError(messageOf(e)))
            }
          />
        ) : (
          selected && !error && <p className="loading" role="status">Loading the family…</p>
        )}
      </div>
      {asking === 'sign-out' && family && (
        <Confirm
          title={`Sign out ${appOnDevice(family.session)}?`}
          confirmLabel="Sign out"
          danger
          onCancel={() => setAsking(null)}
          onConfirm={() => {
            setAsking(null);
            void act(() => api.revokeSession(family.session.id));
          }}
        >
          {family.session.device.name ?? 'That device'} will have to sign in again. Whoever holds
          this sign-in, you or someone else, can no longer use it.
        </Confirm>
      )}
      {asking === 'everywhere' && (
        <Confirm
          title="Sign out everywhere?"
          confirmLabel="Sign out everywhere"
          danger
          onCancel={() => setAsking(null)}
          onConfirm={() => {
            setAsking(null);
            void act(onSignOutEverywhere);
          }}
        >
          Every device signed in to this account, this one included, will have to sign in again.
          Any copy of a sign-in stops working now.
        </Confirm>
      )}
    </section>
  );
}


import { useCallback, useEffect, useState } from 'react';
import { api, messageOf, type Family, type SessionView } from '../api';
import { Confirm } from '../components/Confirm';
import { FamilyView } from '../components/FamilyView';

interface Props {
  version: number;
  selected: string | null;
  onSelect: (session: string) => void;
}

/** Every session's token family; suspicious ones first. */
export function Families({ version, selected, onSelect }: Props) {
  const [sessions, setSessions] = useState<SessionView[] | null>(null);
  const [family, setFamily] = useState<Family | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [killing, setKilling] = useState(false);

  const loadList = useCallback(async () => {
    try {
      const list = await api.sessions('all');
      const all = list.devices.flatMap((d) => d.sessions);
      all.sort((a, b) => Number(b.suspicious) - Number(a.suspicious) || Number(b.state === 'active') - Number(a.state === 'active'));
      setSessions(all);
      setError(null);
      if (!selected && all[0]) onSelect(all[0].id);
    } catch (e) {
      setError(messageOf(e));
    }
  }, [selected, onSelect]);

  const loadFamily = useCallback(async () => {
    if (!selected) return;
    try {
      setFamily(await api.family(selected));
    } catch (e) {
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
                <span className="muted">
                  {s.app} · {s.state}
                  {s.current ? ' · this device' : ''}
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
        {family ? (
          <FamilyView
            family={family}
            onKill={() => setKilling(true)}
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
      {killing && family && (
        <Confirm
          title="Kill this token family?"
          confirmLabel="Kill family"
          danger
          onCancel={() => setKilling(false)}
          onConfirm={() => {
            setKilling(false);
            void act(() => api.revokeSession(family.session.id));
          }}
        >
          The session on {family.session.device.name ?? 'this device'} ends now. Whoever holds its
          refresh token, you or someone else, can no longer use it.
        </Confirm>
      )}
    </section>
  );
}

import type { SecurityEvent } from '../api';
import { relative, useNow } from '../time';

/** Signals in plain words, most severe first. */
export function Signals({ signals }: { signals: SecurityEvent[] }) {
  const now = useNow();
  if (signals.length === 0) return null;
  const order = { high: 0, medium: 1, low: 2, info: 3 } as const;
  const sorted = [...signals].sort((a, b) => order[a.severity] - order[b.severity]);
  return (
    <ul className="signals" aria-label="Warning signs">
      {sorted.map((s) => (
        <li key={s.id} className={`signal sev-${s.severity}`}>
          <span className="badge">{s.severity}</span> {s.summary}{' '}
          <span className="muted">({relative(s.at, now)})</span>
        </li>
      ))}
    </ul>
  );
}

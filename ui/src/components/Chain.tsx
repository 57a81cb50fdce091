import type { Family, Generation } from '../api';
import { absolute } from '../time';

const STEP = 112;
const LANE_Y = 64;

function color(g: Generation): string {
  if (g.events.some((e) => e.kind === 'reuse_detected')) return 'var(--danger)';
  if (g.state === 'active') return 'var(--ok)';
  if (g.state === 'revoked') return 'var(--danger)';
  return 'var(--muted-fg)';
}

/**
 * The rotation chain as a picture: one node per refresh token, oldest on the left; where and
 * when it was used; a warning where a retired token came back; a bar where the family died.
 */
export function Chain({ family }: { family: Family }) {
  const gens = [...family.generations].reverse();
  if (gens.length === 0) return <p className="empty">This family has no tokens on record.</p>;
  const width = Math.max(gens.length * STEP + 80, 320);
  const killed = family.session.state === 'revoked';
  return (
    <figure className="chain">
      <div className="chain-scroll">
        <svg
          width={width}
          height={170}
          role="img"
          aria-label={`Rotation chain of ${gens.length} generation${gens.length === 1 ? '' : 's'}${killed ? ', ended by revocation' : ''}`}
        >
          <line x1={40} y1={LANE_Y} x2={40 + (gens.length - 1) * STEP} y2={LANE_Y} stroke="var(--line)" strokeWidth={3} />
          {gens.map((g, i) => {
            const x = 40 + i * STEP;
            const alarm = g.events.filter((e) => e.severity === 'high' || e.severity === 'medium');
            return (
              <g key={g.generation}>
                <title>
                  {`Generation ${g.generation}: ${g.state}${g.retired_reason ? ` (${g.retired_reason})` : ''}\nissued ${absolute(g.issued_at)} to ${g.issued_to.ip ?? '?'}${g.used_at ? `\nused ${absolute(g.used_at)} from ${g.used_by?.ip ?? '?'}` : ''}${g.events.map((e) => `\n⚠ ${e.summary}`).join('')}`}
                </title>
                <circle cx={x} cy={LANE_Y} r={14} fill={color(g)} stroke="var(--bg)" strokeWidth={3} />
                <text x={x} y={LANE_Y + 5} textAnchor="middle" className="gen-num">
                  {g.generation}
                </text>
                <text x={x} y={LANE_Y + 36} textAnchor="middle" className="gen-label">
                  {new Date(g.issued_at).toLocaleTimeString()}
                </text>
                <text x={x} y={LANE_Y + 52} textAnchor="middle" className="gen-label">
                  {g.issued_to.ip ?? ''}
                </text>
                {alarm.length > 0 && (
                  <g className="alarm">
                    <path d={`M${x - 12} ${LANE_Y - 26} L${x} ${LANE_Y - 48} L${x + 12} ${LANE_Y - 26} Z`} fill="var(--danger)" />
                    <text x={x} y={LANE_Y - 30} textAnchor="middle" className="alarm-mark">!</text>
                  </g>
                )}
              </g>
            );
          })}
          {killed && (
            <g>
              <line
                x1={40 + (gens.length - 1) * STEP + 34}
                y1={LANE_Y - 26}
                x2={40 + (gens.length - 1) * STEP + 34}
                y2={LANE_Y + 26}
                stroke="var(--danger)"
                strokeWidth={6}
              />
              {/* Beside the bar, clear of the last token's time and address below it. */}
              <text x={40 + (gens.length - 1) * STEP + 44} y={LANE_Y + 5} textAnchor="start" className="gen-label killed">
                ended
              </text>
            </g>
          )}
        </svg>
      </div>
      <figcaption className="muted">
        Each circle is one refresh token, oldest on the left. Green: the live one. Red: revoked, or a
        retired token that came back. Hover a circle for where and when it was used.
      </figcaption>
    </figure>
  );
}

import { useState, type KeyboardEvent } from 'react';
import type { Family, Generation, SecurityEvent } from '../api';
import { absolute, clockTime } from '../time';

const STEP = 120;
const LEFT = 130;
const APP_Y = 52;
const OTHER_Y = 132;

/** A retired token that came back: the moment the chain branches to "other software". */
function isReplay(e: SecurityEvent): boolean {
  return e.kind === 'reuse_detected' || e.kind === 'revoked_token_used';
}

function replayOf(g: Generation): SecurityEvent | undefined {
  return g.events.find(isReplay);
}

/** What a token node says, in words: read by screen readers and shown when it is chosen. */
function describe(g: Generation): string {
  const state = g.state === 'active' ? 'live' : g.state === 'revoked' ? 'ended' : 'used and replaced';
  const used = g.used_at ? `, used ${absolute(g.used_at)} from ${g.used_by?.ip ?? 'an unknown address'}` : '';
  const warnings = g.events.map((e) => ` ${e.summary}.`).join('');
  return `Token ${g.generation}: ${state}. Issued ${absolute(g.issued_at)} to ${g.issued_to.ip ?? 'an unknown address'}${used}.${warnings}`;
}

function describeReplay(g: Generation, e: SecurityEvent): string {
  return `A copy of token ${g.generation} came back ${absolute(e.at)} from ${e.user_agent ?? 'unknown software'} at ${e.ip ?? 'an unknown address'}.`;
}

/** Each state by shape as well as colour: a filled circle is live, a ring was used, a square ended. */
function TokenMark({ g, x }: { g: Generation; x: number }) {
  if (g.state === 'revoked') {
    return <rect x={x - 12} y={APP_Y - 12} width={24} height={24} rx={3} className="mark ended" />;
  }
  if (g.state === 'active') return <circle cx={x} cy={APP_Y} r={13} className="mark live" />;
  return <circle cx={x} cy={APP_Y} r={11} className="mark used" />;
}

/**
 * The rotation chain as a story in two lanes: "your app", one token after another, oldest on
 * the left; and "other software", where a retired token came back. Every token is a stop for
 * the keyboard; the one chosen is described in words below the picture.
 */
export function Chain({ family }: { family: Family }) {
  const gens = [...family.generations].reverse();
  const [chosen, setChosen] = useState<string | null>(null);
  if (gens.length === 0) return <p className="empty">This family has no tokens on record.</p>;
  const width = Math.max(LEFT + gens.length * STEP + 60, 360);
  const ended = family.session.state === 'revoked';
  const replays = gens.flatMap((g, i) => {
    const e = replayOf(g);
    return e ? [{ g, e, i }] : [];
  });
  const height = replays.length > 0 ? OTHER_Y + 56 : APP_Y + 64;
  const last = LEFT + (gens.length - 1) * STEP;
  const words: Record<string, string> = {};
  for (const g of gens) words[`t${g.generation}`] = describe(g);
  for (const { g, e } of replays) words[`r${g.generation}`] = describeReplay(g, e);
  const stop = (key: string, label: string) => ({
    tabIndex: 0,
    role: 'button',
    'aria-label': label,
    'aria-pressed': chosen === key,
    className: `stop ${chosen === key ? 'chosen' : ''}`,
    onClick: () => setChosen(key),
    onFocus: () => setChosen(key),
    onKeyDown: (ev: KeyboardEvent) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        setChosen(key);
      }
    },
  });
  return (
    <figure className="chain">
      <div className="chain-scroll">
        <svg
          width={width}
          height={height}
          role="group"
          aria-label={`Rotation chain of ${gens.length} generation${gens.length === 1 ? '' : 's'}${ended ? ', ended by revocation' : ''}`}
        >
          <text x={12} y={APP_Y + 4} className="lane-label">Your app</text>
          <line x1={LEFT} y1={APP_Y} x2={last} y2={APP_Y} className="lane" />
          {replays.length > 0 && <text x={12} y={OTHER_Y + 4} className="lane-label other">Other software</text>}
          {gens.map((g, i) => {
            const x = LEFT + i * STEP;
            // The stop holds the mark and its number only: what it shows is what it is named.
            return (
              <g key={g.generation}>
                <g {...stop(`t${g.generation}`, words[`t${g.generation}`] ?? '')}>
                  <TokenMark g={g} x={x} />
                  <text x={x} y={APP_Y + 4} textAnchor="middle" className={`gen-num on-${g.state}`}>
                    {g.generation}
                  </text>
                </g>
                {g.events.some((e) => !isReplay(e) && (e.severity === 'high' || e.severity === 'medium')) && (
                  <g className="alarm" aria-hidden="true">
                    <path d={`M${x - 9} ${APP_Y - 20} L${x} ${APP_Y - 36} L${x + 9} ${APP_Y - 20} Z`} className="mark warning" />
                    <text x={x} y={APP_Y - 23} textAnchor="middle" className="alarm-mark">!</text>
                  </g>
                )}
                <text x={x} y={APP_Y + 30} textAnchor="middle" className="gen-label" aria-hidden="true">
                  {clockTime(g.issued_at, true)}
                </text>
              </g>
            );
          })}
          {replays.map(({ g, e, i }) => {
            const x = LEFT + i * STEP;
            const rx = x + STEP / 2;
            return (
              <g key={`r${g.generation}`}>
                <path d={`M${x} ${APP_Y + 13} C ${x} ${OTHER_Y}, ${rx - 30} ${OTHER_Y}, ${rx - 14} ${OTHER_Y}`} className="branch" />
                <g {...stop(`r${g.generation}`, words[`r${g.generation}`] ?? '')}>
                  <path d={`M${rx} ${OTHER_Y - 14} L${rx + 14} ${OTHER_Y} L${rx} ${OTHER_Y + 14} L${rx - 14} ${OTHER_Y} Z`} className="mark replay" />
                </g>
                <g aria-hidden="true">
                  <text x={rx} y={OTHER_Y + 5} textAnchor="middle" className="alarm-mark">!</text>
                  <text x={rx + 22} y={OTHER_Y - 2} className="gen-label other">{e.user_agent ?? 'unknown software'}</text>
                  <text x={rx + 22} y={OTHER_Y + 14} className="gen-label">{clockTime(e.at, true)}{e.ip ? ` · ${e.ip}` : ''}</text>
                </g>
              </g>
            );
          })}
          {ended && (
            <g>
              <line x1={last + 40} y1={APP_Y - 22} x2={last + 40} y2={APP_Y + 22} className="end-bar" />
              <text x={last + 50} y={APP_Y + 4} className="gen-label killed">
                ended
              </text>
            </g>
          )}
        </svg>
      </div>
      <figcaption>
        <p className="chain-detail" aria-live="polite">
          {chosen ? words[chosen] : 'Choose a token (or Tab to it) to see where and when it was used.'}
        </p>
        <p className="muted small">
          Each mark is one refresh token, oldest on the left: a filled circle is the live one, a
          ring was used and replaced, a square ended the sign-in, a diamond is a copy that came back
          from other software.
        </p>
      </figcaption>
    </figure>
  );
}

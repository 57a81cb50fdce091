import type { Family, SessionView, SessionList } from '../src/api';

const iso = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();

export function session(over: Partial<SessionView> = {}): SessionView {
  return {
    id: 's-laptop',
    user_id: 'u1',
    client_id: 'latchkey-desktop',
    app: 'Latchkey Desktop',
    device: { name: 'laptop', platform: 'linux', app_version: '0.1.0' },
    scope: 'openid account',
    signed_in_at: iso(120),
    last_used_at: iso(3),
    expires_at: iso(-60 * 24 * 30),
    first_seen: { ip: '192.0.2.10', user_agent: 'latchkey/0.1.0' },
    last_seen: { ip: '192.0.2.10', user_agent: 'latchkey/0.1.0' },
    state: 'active',
    revoked: null,
    generation: 3,
    suspicious: false,
    signals: [],
    current: true,
    key_thumbprint: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
    ...over,
  };
}

export const stolen = session({
  id: 's-phone',
  current: false,
  key_thumbprint: null,
  device: { name: 'phone', platform: 'android', app_version: '0.1.0' },
  suspicious: true,
  signals: [
    {
      id: 'e1',
      at: iso(1),
      kind: 'concurrent_use',
      severity: 'high',
      summary: 'Used from two networks 10 seconds apart (192.0.2.0/24 and 198.51.100.0/24): the token may be in two places',
      user_id: 'u1',
      session_id: 's-phone',
      generation: 2,
      ip: '198.51.100.7',
      user_agent: 'curl/8',
      details: {},
      acknowledged_at: null,
    },
  ],
});

export const list: SessionList = {
  devices: [
    { device: session().device, current: true, sessions: [session()] },
    { device: stolen.device, current: false, sessions: [stolen] },
  ],
  total: 2,
  next_offset: null,
  counts: { all: 2, active: 2, revoked: 0, expired: 0, suspicious: 1 },
};

export const family: Family = {
  session: stolen,
  generations: [2, 1].map((g) => ({
    generation: g,
    state: g === 2 ? 'active' : 'rotated',
    retired_reason: g === 2 ? null : 'rotated',
    issued_at: iso(10 - g),
    issued_to: { ip: g === 2 ? '198.51.100.7' : '192.0.2.10', user_agent: null },
    used_at: g === 2 ? null : iso(8),
    used_by: g === 2 ? null : { ip: '198.51.100.7', user_agent: 'curl/8' },
    expires_at: iso(-1000),
    grace_replays: 0,
    events: g === 2 ? stolen.signals : [],
  })),
  next_before: null,
  events: stolen.signals,
};

/** A family the server ended because a used refresh token came back from curl. */
export const reused: Family = (() => {
  const at = iso(2);
  const replay = {
    id: 'e9',
    at,
    kind: 'reuse_detected' as const,
    severity: 'high' as const,
    summary: 'A refresh token that had already been used (generation 1) was presented again, so the session was revoked: someone else may have a copy',
    user_id: 'u1',
    session_id: 's-copy',
    generation: 1,
    ip: '127.0.0.1',
    user_agent: 'curl/8.5.0',
    details: {},
    acknowledged_at: null,
  };
  const s = session({
    id: 's-copy',
    current: false,
    state: 'revoked',
    suspicious: true,
    signals: [replay],
    revoked: { at, by: 'system', reason: 'reuse_detected' },
  });
  // The server files the replay under the generation that came back (1).
  const generations = family.generations.map((g) => (g.generation === 1 ? { ...g, events: [replay] } : { ...g, events: [] }));
  return { ...family, session: s, generations, events: [replay] };
})();

// For scripts/bench-revocation: signs in N sessions with the peer kit's flow (PKCE through the
// sign-in form), and for each: GET /notes with its access token (200), revoke its refresh token
// (RFC 7009), then GET /notes with the same, unexpired access token until it is refused. Prints
// the time from the revocation request to the first 401, p50 / p99 / max over N, as one JSON line.
// Usage: node revocation-latency.mjs KIT --issuer URL --notes URL --user U --password P --n N
const [kit, ...rest] = process.argv.slice(2);
const { discover, login, parseArgs } = await import(`${kit}/flow.mjs`);
const args = parseArgs(rest);
const meta = await discover(args.issuer);
const n = Number(args.n || 100);
const notes = (token) => fetch(args.notes, { headers: { authorization: `Bearer ${token}` } });
const times = [];
for (let i = 0; i < n; i++) {
  const t = await login(meta, 'latchkey-desktop', args.user, args.password);
  const before = await notes(t.access_token);
  if (before.status !== 200) throw new Error(`GET /notes before the revocation: ${before.status}`);
  const started = performance.now();
  const revoked = await fetch(meta.revocation_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: t.refresh_token, client_id: 'latchkey-desktop' }),
  });
  if (revoked.status !== 200) throw new Error(`revocation: ${revoked.status}`);
  for (;;) {
    const res = await notes(t.access_token);
    if (res.status === 401) break;
    if (res.status !== 200) throw new Error(`GET /notes after the revocation: ${res.status}`);
    if (performance.now() - started > 10_000) throw new Error('still accepted 10 s after the revocation');
  }
  times.push(performance.now() - started);
}
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)];
console.log(JSON.stringify({
  revocations: n, p50_ms: +at(0.5).toFixed(2), p99_ms: +at(0.99).toFixed(2), max_ms: +times.at(-1).toFixed(2),
}));

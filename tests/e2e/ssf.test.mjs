// latchkeyd's Shared Signals transmitter against receiver code we did not write: the certified
// openid-client gets the service account's token (client_credentials), and jose verifies each
// SET against the JWKS as any SSF receiver would (typ, signature, issuer, audience).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { formSignIn, startLatchkeyd } from './latchkeyd.mjs';

const servers = [];
after(() => servers.forEach((s) => s.stop()));

const REDIRECT = 'http://127.0.0.1:49152/callback';
const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
const POLL = 'urn:ietf:rfc:8936';
const insecure = { execute: [oidc.allowInsecureRequests] }; // http on loopback only

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

test('an SSF receiver built on openid-client and jose gets a verified session-revoked event', async () => {
  const server = await startLatchkeyd({
    clients: [['receiver', '--name', 'Receiver', '--kind', 'confidential', '--grant', 'client_credentials', '--scope', 'ssf']],
  });
  servers.push(server);
  const [{ client_id, client_secret }] = server.clients;

  // The receiver: a service account's own token, through openid-client.
  const receiver = await oidc.discovery(new URL(server.issuer), client_id, undefined,
    oidc.ClientSecretBasic(client_secret), insecure);
  const { access_token: token, refresh_token } = await oidc.clientCredentialsGrant(receiver, { scope: 'ssf' });
  assert.equal(refresh_token, undefined);
  const api = (url, init = {}) => fetch(url, {
    ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
  });

  const ssf = await (await fetch(new URL('/.well-known/ssf-configuration', server.issuer))).json();
  assert.equal(ssf.issuer, server.issuer);
  assert.ok(ssf.delivery_methods_supported.includes(POLL));
  let res = await api(ssf.configuration_endpoint, {
    method: 'POST',
    body: JSON.stringify({ delivery: { method: POLL }, events_requested: [SESSION_REVOKED] }),
  });
  assert.equal(res.status, 201);
  const stream = await res.json();
  assert.deepEqual(stream.events_delivered, [SESSION_REVOKED]);

  // A person signs in with the desktop's client, then signs out (RFC 7009).
  const desktop = await oidc.discovery(new URL(server.issuer), 'latchkey-desktop', undefined, oidc.None(), insecure);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(desktop, {
    redirect_uri: REDIRECT, scope: 'openid offline_access', state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const callback = await formSignIn(url, 'demo@latchkey.local', server.password);
  const tokens = await oidc.authorizationCodeGrant(desktop, callback,
    { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
  const sid = claimsOf(tokens.access_token).sid;
  await oidc.tokenRevocation(desktop, tokens.refresh_token);

  // RFC 8936 poll; every SET verified with jose against the transmitter's JWKS.
  res = await api(stream.delivery.endpoint_url, {
    method: 'POST', body: JSON.stringify({ returnImmediately: true }),
  });
  assert.equal(res.status, 200);
  const { sets, moreAvailable } = await res.json();
  assert.equal(moreAvailable, false);
  const jwks = createRemoteJWKSet(new URL(ssf.jwks_uri));
  const verified = [];
  for (const [jti, set] of Object.entries(sets)) {
    const { payload, protectedHeader } = await jwtVerify(set, jwks, {
      issuer: server.issuer, audience: client_id, typ: 'secevent+jwt',
    });
    assert.equal(payload.jti, jti);
    assert.equal(payload.exp, undefined, 'a SET does not expire');
    assert.ok(['EdDSA', 'ES256'].includes(protectedHeader.alg));
    verified.push(payload);
  }
  assert.equal(verified.length, 1);
  const [set] = verified;
  assert.equal(set.sub_id.format, 'complex');
  assert.equal(set.sub_id.session.id, sid, 'names the session its access tokens carry');
  assert.equal(set.sub_id.user.iss, server.issuer);
  assert.equal(set.events[SESSION_REVOKED].initiating_entity, 'user');

  // Acknowledged, it is not delivered again.
  res = await api(stream.delivery.endpoint_url, {
    method: 'POST', body: JSON.stringify({ ack: Object.keys(sets), returnImmediately: true }),
  });
  assert.deepEqual((await res.json()).sets, {});
});

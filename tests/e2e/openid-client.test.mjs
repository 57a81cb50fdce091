// latchkeyd's DPoP (RFC 9449) against a certified relying-party library: openid-client, using
// its own DPoP support, signs in through the sign-in form, refreshes (rotating), calls the
// account API with proofs, and is refused with a foreign key, which kills the family.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, webcrypto } from 'node:crypto';
import * as oidc from 'openid-client';
import { formSignIn, startLatchkeyd } from './latchkeyd.mjs';

const servers = [];
after(() => servers.forEach((s) => s.stop()));

// Any port: latchkeyd accepts any port on a loopback redirect URI (RFC 8252 §7.3). Nothing
// listens there; the form's redirect is read from its Location header.
const REDIRECT = 'http://127.0.0.1:49152/callback';

async function start(config) {
  const server = await startLatchkeyd({ config });
  servers.push(server);
  const config_ = await oidc.discovery(new URL(server.issuer), 'latchkey-desktop', undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests], // http on loopback only
  });
  return { ...server, config: config_ };
}

/** RFC 7638 thumbprint of a public key, as the server binds it. */
async function thumbprint(publicKey) {
  const { crv, kty, x, y } = await webcrypto.subtle.exportKey('jwk', publicKey);
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
}

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

/** openid-client's whole sign-in, bound to `keyPair` from the authorization request on. */
async function signIn(server, email, password, keyPair, scope = 'openid email offline_access account') {
  const DPoP = oidc.getDPoPHandle(server.config, keyPair);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(server.config, {
    redirect_uri: REDIRECT, scope, state, nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    dpop_jkt: await thumbprint(keyPair.publicKey),
    device_name: 'openid-client', device_platform: 'node',
  });
  const callback = await formSignIn(url, email, password);
  const tokens = await oidc.authorizationCodeGrant(server.config, callback,
    { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
    undefined, { DPoP });
  return { tokens, DPoP };
}

test('openid-client signs in with DPoP, refreshes (rotating), and calls the account API with proofs', async () => {
  const server = await start();
  assert.deepEqual(server.config.serverMetadata().dpop_signing_alg_values_supported, ['ES256', 'EdDSA']);
  const keyPair = await oidc.randomDPoPKeyPair('ES256');
  const jkt = await thumbprint(keyPair.publicKey);
  let { tokens, DPoP } = await signIn(server, 'demo@latchkey.local', server.password, keyPair);
  assert.equal(tokens.token_type, 'dpop');
  assert.equal(claimsOf(tokens.access_token).cnf.jkt, jkt);
  assert.equal(tokens.claims().email, 'demo@latchkey.local', 'the ID token verified');

  for (let i = 0; i < 3; i++) {
    const next = await oidc.refreshTokenGrant(server.config, tokens.refresh_token, undefined, { DPoP });
    assert.equal(next.token_type, 'dpop');
    assert.notEqual(next.refresh_token, tokens.refresh_token, 'a bound refresh token still rotates');
    assert.equal(claimsOf(next.access_token).cnf.jkt, jkt);
    tokens = next;
  }

  const sessionsUrl = new URL(`${server.issuer}/api/v1/me/sessions`);
  const res = await oidc.fetchProtectedResource(server.config, tokens.access_token, sessionsUrl, 'GET',
    undefined, undefined, { DPoP });
  assert.equal(res.status, 200);
  const mine = (await res.json()).devices.flatMap((d) => d.sessions).find((s) => s.current);
  assert.equal(mine.key_thumbprint, jkt, 'the device list shows the binding');
  assert.equal(mine.generation, 4);

  const asBearer = await fetch(sessionsUrl, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  assert.equal(asBearer.status, 401, 'a bound token is never accepted as Bearer');
  assert.match(asBearer.headers.get('www-authenticate'), /^DPoP .*error="invalid_token"/);
});

test('openid-client with a foreign key is refused, and the family is killed with key_mismatch', async () => {
  const server = await start();
  const owner = await oidc.randomDPoPKeyPair('ES256');
  const { tokens, DPoP } = await signIn(server, 'demo@latchkey.local', server.password, owner);
  const sid = claimsOf(tokens.access_token).sid;

  // The refresh token, copied to another machine: a valid token, the wrong key.
  const thief = oidc.getDPoPHandle(server.config, await oidc.randomDPoPKeyPair('ES256'));
  await assert.rejects(
    oidc.refreshTokenGrant(server.config, tokens.refresh_token, undefined, { DPoP: thief }),
    (e) => e.error === 'invalid_grant' && /another device's key/.test(e.error_description),
  );
  await assert.rejects(
    oidc.refreshTokenGrant(server.config, tokens.refresh_token, undefined, { DPoP }),
    (e) => e.error === 'invalid_grant',
    'the family is dead for its owner too',
  );

  // Support staff see it, with its evidence.
  const staffKey = await oidc.randomDPoPKeyPair('ES256');
  const staff = await signIn(server, 'support@latchkey.local', server.supportPassword, staffKey, 'openid support');
  const res = await oidc.fetchProtectedResource(server.config, staff.tokens.access_token,
    new URL(`${server.issuer}/api/v1/admin/events?kind=key_mismatch`), 'GET', undefined, undefined, { DPoP: staff.DPoP });
  assert.equal(res.status, 200);
  const [event] = (await res.json()).events;
  assert.equal(event.session_id, sid);
  assert.equal(event.severity, 'high');
  assert.equal(event.details.bound_jkt, await thumbprint(owner.publicKey));
  assert.equal(event.details.session_revoked, true);
});

test('with server nonces required, openid-client takes the nonce and retries', async () => {
  const server = await start('[dpop]\nrequire_nonce = true\n');
  // Record what the token endpoint answers, under openid-client's own retries.
  const answers = [];
  server.config[oidc.customFetch] = async (url, options) => {
    const res = await fetch(url, options);
    if (new URL(url).pathname === '/token') {
      answers.push({ status: res.status, nonce: res.headers.get('dpop-nonce'), body: await res.clone().json() });
    }
    return res;
  };
  const keyPair = await oidc.randomDPoPKeyPair('ES256');
  const { tokens, DPoP } = await signIn(server, 'demo@latchkey.local', server.password, keyPair);
  assert.equal(tokens.token_type, 'dpop');
  assert.equal(answers[0].status, 400);
  assert.equal(answers[0].body.error, 'use_dpop_nonce', 'the first proof had no nonce');
  assert.ok(answers[0].nonce, 'and the answer carried one');
  assert.equal(answers[1].status, 200, 'the retry with it succeeded');
  assert.ok(answers[1].nonce, 'with a nonce for the next proof');
  const next = await oidc.refreshTokenGrant(server.config, tokens.refresh_token, undefined, { DPoP });
  assert.notEqual(next.refresh_token, tokens.refresh_token);
  assert.equal(answers.length, 3, 'the refresh used the cached nonce: no second round trip');
  assert.equal(answers[2].status, 200);
});

// The sign-in page as a person sees it: Debian's headless Chromium against a real latchkeyd
// (its --demo account), a loopback "app" receiving the redirect, screenshots in docs/screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { startLatchkeyd } from './latchkeyd.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const shots = resolve(here, '../../docs/screenshots');
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let stopServer, issuer, password, browser, app;
const callbacks = [];

before(async () => {
  mkdirSync(shots, { recursive: true });
  ({ issuer, password, stop: stopServer } = await startLatchkeyd());
  // The "app": a loopback listener like the desktop client's.
  app = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/callback') callbacks.push(url); // not the browser's favicon request
    res.end('<!doctype html><title>Signed in</title><p>You can close this tab.</p>');
  });
  await new Promise((ok) => app.listen(0, '127.0.0.1', ok));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  app?.close();
  stopServer?.();
});

const b64 = (buf) => buf.toString('base64url');
function authorizeUrl(extra = {}) {
  const verifier = b64(randomBytes(32));
  const state = b64(randomBytes(12));
  const redirect = `http://127.0.0.1:${app.address().port}/callback`;
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'latchkey-desktop', redirect_uri: redirect,
    scope: 'openid email offline_access', state,
    code_challenge: b64(createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
    device_name: "Alice's laptop", device_platform: 'Linux', app_version: '0.1.0', ...extra,
  });
  return { url: `${issuer}/authorize?${q}`, verifier, state, redirect };
}

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 760, height: 860 }, bypassCSP: true, ...options });
  return context.newPage();
}

async function axeViolations(page) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`);
}

test('the sign-in page names the app and device, is accessible, and explains a wrong password', async () => {
  const page = await newPage();
  const { url } = authorizeUrl();
  await page.goto(url);
  assert.equal(await page.title(), 'Sign in · Latchkey');
  const request = page.getByRole('region', { name: 'Who is asking' });
  assert.match(await request.innerText(), /Latchkey Desktop/);
  assert.match(await request.innerText(), /Alice's laptop/);
  assert.match(await request.innerText(), /See your email address/);
  assert.deepEqual(await axeViolations(page), []);
  await page.screenshot({ path: join(shots, 'signin.png'), fullPage: true });

  // Keyboard only: type, tab, type, Enter.
  await page.getByLabel('Email address').focus();
  await page.keyboard.type('demo@latchkey.local');
  await page.keyboard.press('Tab');
  await page.keyboard.type('not the password');
  await page.keyboard.press('Enter');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /do not match an account/);
  assert.equal(await page.getByLabel('Email address').inputValue(), 'demo@latchkey.local');
  assert.equal(await page.getByLabel('Password').getAttribute('aria-invalid'), 'true');
  assert.deepEqual(await axeViolations(page), []);
  await page.screenshot({ path: join(shots, 'signin-error.png'), fullPage: true });
  await page.context().close();
});

test('signing in returns to the app with code, state and iss; the code buys tokens', async () => {
  const page = await newPage();
  const { url, verifier, state, redirect } = authorizeUrl();
  await page.goto(url);
  await page.getByLabel('Email address').fill('demo@latchkey.local');
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/callback\?/);
  const cb = callbacks.find((c) => c.searchParams.get('state') === state);
  assert.ok(cb, 'the app received the callback');
  assert.equal(cb.searchParams.get('iss'), issuer);
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: 'latchkey-desktop',
      code: cb.searchParams.get('code'), redirect_uri: redirect, code_verifier: verifier }),
  });
  assert.equal(res.status, 200);
  const tokens = await res.json();
  assert.match(tokens.refresh_token, /^lkrt_/);
  await page.context().close();
});

test('dark mode follows the system', async () => {
  const page = await newPage({ colorScheme: 'dark' });
  await page.goto(authorizeUrl().url);
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(17, 19, 24)');
  assert.deepEqual(await axeViolations(page), []);
  await page.screenshot({ path: join(shots, 'signin-dark.png'), fullPage: true });
  await page.context().close();
});

test('a bad redirect_uri gets a clear page and no redirect', async () => {
  const page = await newPage();
  const response = await page.goto(authorizeUrl({ redirect_uri: 'https://evil.example/callback' }).url);
  assert.equal(response.status(), 400);
  assert.equal(new URL(page.url()).origin, issuer);
  assert.match(await page.getByRole('heading').innerText(), /not valid/);
  assert.match(await page.getByRole('alert').innerText(), /not registered for this app/);
  assert.deepEqual(await axeViolations(page), []);
  await page.screenshot({ path: join(shots, 'error-redirect-uri.png'), fullPage: true });
  await page.context().close();
});

test('cancel returns access_denied to the app', async () => {
  const page = await newPage();
  const { url, state } = authorizeUrl();
  await page.goto(url);
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.waitForURL(/\/callback\?/);
  const cb = callbacks.find((c) => c.searchParams.get('state') === state);
  assert.ok(cb, 'the app received the callback');
  assert.equal(cb.searchParams.get('error'), 'access_denied');
  await page.context().close();
});

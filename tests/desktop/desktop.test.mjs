// The real Latchkey window, driven through tauri-driver and Debian's WebKitWebDriver under
// Xvfb, against a real latchkeyd (--demo). Only the system browser is scripted: $BROWSER points
// at scripts/demo-signin.mjs, which fills in the sign-in page as a person would.
// Needs: DISPLAY (Xvfb), a keychain session (scripts/with-keychain), LATCHKEYD_BIN, LATCHKEY_BIN,
// LATCHKEY_DESKTOP_BIN, NOTES_API_BIN, tauri-driver on PATH. Screenshots go to docs/screenshots/desktop-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { remote } from 'webdriverio';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const shots = join(root, 'docs/screenshots');
const target = process.env.CARGO_TARGET_DIR || join(root, 'target');
const serverBin = process.env.LATCHKEYD_BIN || join(target, 'debug/latchkeyd');
const cliBin = process.env.LATCHKEY_BIN || join(target, 'debug/latchkey');
const appBin = process.env.LATCHKEY_DESKTOP_BIN || join(target, 'debug/latchkey-desktop');
const notesBin = process.env.NOTES_API_BIN || join(target, 'debug/notes-api');

const work = mkdtempSync(join(tmpdir(), 'latchkey-desktop-e2e-'));
const creds = join(work, 'creds');
let server, driver, browser, issuer, monitor, notesApi, notes;
const passwords = {};
// Everything said on the session bus (the app's notifications, its tray item), as
// dbus-monitor prints it. The notification daemon itself is the one thing absent here.
let bus = '';
/** Did the app ask the notification service (org.freedesktop.Notifications) to show this? */
const notified = (summary) => new RegExp(`member=Notify\\n(?:\\s+\\S+ .*\\n){3}\\s+string "${summary}"`).test(bus);

/** The labels of the app's tray menu, read from the menu it exports on the session bus
 * (com.canonical.dbusmenu, as a tray host would). */
function trayMenu() {
  const item = bus.match(/sender=(:[\d.]+) .*path=(\/org\/ayatana\/NotificationItem\/\S+\/Menu);/);
  if (!item) return '';
  return execFileSync('gdbus', ['call', '--session', '--dest', item[1], '--object-path', item[2],
    '--method', 'com.canonical.dbusmenu.GetLayout', '0', 'int32 -1', '@as []'], { encoding: 'utf8' });
}

function home(name) {
  const h = join(work, name);
  mkdirSync(h, { recursive: true });
  return { HOME: h, XDG_CONFIG_HOME: join(h, 'config'), XDG_DATA_HOME: join(h, 'data') };
}

/** Which account the scripted browser signs in as next. */
function signInAs(email) {
  writeFileSync(creds, `${email}\n${passwords[email]}\n`);
}

async function waitFor(fn, what, ms = 10_000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * What every screen must be before it is photographed: no serious or critical accessibility
 * violation (axe-core, WCAG 2.2 AA rules), and nothing wider than the window (the content area
 * scrolls vertically only).
 */
async function checkScreen(name) {
  // Passed as the script's own text: the page's CSP forbids eval.
  if (!(await browser.execute('return !!window.axe'))) await browser.execute(`${axeSource}\nreturn true;`);
  const violations = await browser.execute(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(' | ')}`);
  });
  assert.deepEqual(violations, [], `${name}: accessibility violations`);
  const overflowing = await browser.execute(() => {
    // The page and the content area scroll vertically only; in the sidebar, nothing may end
    // past its edge.
    const wide = ['html', 'body', '.app', 'main.content']
      .map((sel) => [sel, document.querySelector(sel)])
      .filter(([, el]) => el && el.scrollWidth > el.clientWidth + 1)
      .map(([sel, el]) => `${sel} ${el.scrollWidth}>${el.clientWidth}`);
    const sidebar = document.querySelector('.sidebar');
    const edge = sidebar ? sidebar.getBoundingClientRect().right : Infinity;
    const out = sidebar
      ? [...sidebar.querySelectorAll('*')]
          .filter((el) => el.getBoundingClientRect().right > edge + 1)
          .map((el) => `.sidebar ${el.tagName.toLowerCase()}.${el.className} ends past it`)
      : [];
    return [...wide, ...out];
  });
  assert.deepEqual(overflowing, [], `${name}: wider than the window`);
}

const shot = async (name, dir = shots) => {
  await checkScreen(name);
  await browser.saveScreenshot(join(dir, `desktop-${name}.png`));
};
const button = (text) => browser.$(`//button[normalize-space()="${text}"]`);
const heading = (text) => browser.$(`//*[self::h1 or self::h2 or self::h3][normalize-space()="${text}"]`);

/** A second client signing in through the form with its own loopback redirect (raw OAuth). */
async function rawSignIn(email, userAgent, deviceName = 'stolen copy') {
  const verifier = randomBytes(32).toString('base64url');
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'latchkey-desktop', redirect_uri: 'http://127.0.0.1:50505/callback',
    scope: 'openid offline_access account', state: 's', device_name: deviceName, device_platform: 'linux',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  });
  const page = await fetch(`${issuer}/authorize?${q}`);
  const cookie = page.headers.get('set-cookie').split(';')[0];
  const html = await page.text();
  const field = (n) => html.match(new RegExp(`name="${n}" value="([^"]*)"`))[1];
  const res = await fetch(`${issuer}/authorize`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ request: field('request'), csrf_token: field('csrf_token'), username: email, password: passwords[email], action: 'signin' }),
  });
  const code = new URL(res.headers.get('location')).searchParams.get('code');
  return token({ grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:50505/callback', code_verifier: verifier }, userAgent);
}

/** A person approving a sign-in with a code, in a browser on another device: the code page,
 * then the approval form with their email and password. The page it ends on. */
async function approveCode(userCode, email) {
  const page = await fetch(`${issuer}/device?user_code=${encodeURIComponent(userCode)}`);
  const cookie = page.headers.get('set-cookie').split(';')[0];
  const html = await page.text();
  assert.match(html, /Approving gives that device access to your account/);
  const field = (n) => html.match(new RegExp(`name="${n}" value="([^"]*)"`))[1];
  const res = await fetch(`${issuer}/device`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ request: field('request'), csrf_token: field('csrf_token'), username: email, password: passwords[email], action: 'approve' }),
  });
  return res.text();
}

/** GET /notes at notes-api as the CLI of the device at `env` calls it: its stored access token
 * with a fresh DPoP proof (`latchkey token --request`). The HTTP status. */
async function notesAs(env) {
  const lines = execFileSync(cliBin, ['token', '--request', 'GET', notes], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const headers = Object.fromEntries(lines.trim().split('\n').map((l) => l.split(/:\s(.*)/s).slice(0, 2)));
  return (await fetch(notes, { headers })).status;
}

async function token(params, userAgent) {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': userAgent },
    body: new URLSearchParams({ client_id: 'latchkey-desktop', ...params }),
  });
  return { status: res.status, body: await res.json() };
}

/** Starts tauri-driver and, through it, the app; `env` is added to the app's environment. */
async function openWindow(env = {}) {
  driver = spawn('tauri-driver', ['--port', '4444', '--native-port', '4445'], {
    // WebKitWebDriver's screenshots never return when WebKit composites without the GPU path
    // (the app's default, see src-tauri/src/main.rs), so the window under test keeps it on.
    env: { ...process.env, ...home('desktop'), BROWSER: join(work, 'browser'), WEBKIT_DISABLE_COMPOSITING_MODE: '0', ...env },
    stdio: 'inherit',
  });
  await new Promise((r) => setTimeout(r, 1500));
  browser = await remote({
    hostname: '127.0.0.1',
    port: 4444,
    logLevel: 'warn',
    capabilities: { 'tauri:options': { application: appBin } },
  });
}

/** Ends the app (it would stay in the tray) and its driver. */
async function closeWindow() {
  await browser.deleteSession().catch(() => {});
  const exited = new Promise((ok) => driver.on('exit', ok));
  driver.kill();
  await exited;
  try {
    execFileSync('pkill', ['-f', `^${appBin}`]);
  } catch {
    // not running any more
  }
  await new Promise((r) => setTimeout(r, 500));
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  server = spawn(serverBin, ['serve', '--demo', '--listen', '127.0.0.1:0'], {
    env: { ...process.env, ...home('server') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise((ok, fail) => {
    server.on('exit', (code) => fail(new Error(`latchkeyd exited with ${code}`)));
    server.stdout.on('data', (chunk) => {
      out += chunk;
      for (const m of out.matchAll(/(\S+@latchkey\.local)\s+password (\S+)/g)) passwords[m[1]] = m[2];
      const url = out.match(/latchkeyd is running at (\S+)/);
      if (url && Object.keys(passwords).length === 2) { issuer = url[1]; ok(); }
    });
  });
  // notes-api beside latchkeyd, as scripts/run starts it: its own service account, long-polling
  // its Shared Signals stream for revocations.
  const registered = JSON.parse(execFileSync(serverBin, ['client', 'add', 'notes-api', '--name', 'Notes API',
    '--kind', 'confidential', '--grant', 'client_credentials', '--scope', 'ssf', '--json'],
  { env: { ...process.env, ...home('server') }, encoding: 'utf8' }));
  notesApi = spawn(notesBin, ['--issuer', issuer, '--listen', '127.0.0.1:0', '--client-id', 'notes-api',
    '--database', join(work, 'notes.db')], {
    env: { ...process.env, NOTES_API_CLIENT_SECRET: registered.client_secret, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let notesOut = '';
  notesApi.stdout.on('data', (chunk) => { notesOut += chunk; });
  notes = `${await waitFor(() => notesOut.match(/notes-api is running at (\S+)/)?.[1], 'notes-api')}/notes`;
  monitor = spawn('dbus-monitor', ['--session'], { stdio: ['ignore', 'pipe', 'ignore'] });
  monitor.stdout.on('data', (chunk) => { bus += chunk; });
  const fakeBrowser = join(work, 'browser');
  writeFileSync(fakeBrowser, `#!/bin/sh\nexec node ${join(root, 'scripts/demo-signin.mjs')} "$1" "$(sed -n 1p ${creds})" "$(sed -n 2p ${creds})"\n`);
  chmodSync(fakeBrowser, 0o755);
  await openWindow();
});

after(async () => {
  await browser?.deleteSession().catch(() => {});
  driver?.kill();
  monitor?.kill();
  notesApi?.kill();
  writeFileSync(join(work, 'bus.log'), bus); // for a look after a failure
  server?.kill('SIGTERM');
});

test('add an account, see two devices, revoke one', async () => {
  await (await heading('Accounts')).waitForDisplayed({ timeout: 15_000 });
  assert.match(await browser.$('body').getText(), /No accounts yet/);
  await shot('accounts-empty');
  signInAs('demo@latchkey.local');
  const address = await browser.$('input[type="url"]');
  await address.setValue(issuer);
  await (await button('Sign in with browser')).click();
  await (await heading('Devices')).waitForDisplayed({ timeout: 20_000 });
  await waitFor(async () => (await browser.$$('article.device')).length === 1, 'this device');
  assert.match(await browser.$('article.device').getText(), /this device/i);
  // The tray says who is signed in.
  await waitFor(() => trayMenu().includes("'Signed in as demo@latchkey.local'"), 'the tray state');
  assert.match(trayMenu(), /'Show Latchkey'/);
  // DPoP: the app's session is bound to the key it keeps in the keychain.
  assert.match(await browser.$('article.device .binding').getText(), /Bound to this device \(key [\w-]{10}…\)/);

  // A second device signs in with a code (the CLI on a "machine" with no browser, approved in a
  // browser elsewhere): it appears live, under the name it gave.
  const phone = home('phone');
  const login = spawn(cliBin, ['login', '--device', '--issuer', issuer, '--device-name', 'demo phone'], {
    env: { ...process.env, ...phone }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let loginOut = '';
  login.stderr.on('data', (c) => { loginOut += c; });
  const userCode = await waitFor(() => loginOut.match(/^\s+([B-Z]{4}-[B-Z]{4})$/m)?.[1], 'the CLI sign-in code');
  assert.match(await approveCode(userCode, 'demo@latchkey.local'), /Your device is signed in/);
  assert.equal(await new Promise((ok) => login.on('exit', ok)), 0, 'the CLI signed in');
  await waitFor(async () => (await browser.$$('article.device')).length === 2, 'the second device, live');
  await shot('devices');
  assert.equal(await notesAs(phone), 200, 'the phone reads its notes');

  const phoneCard = await browser.$('//article[.//h2[normalize-space()="demo phone"]]');
  await (await phoneCard.$('button=Sign out')).click();
  const dialog = await browser.$('[role="dialog"]');
  await dialog.waitForDisplayed();
  await shot('revoke-confirm');
  await (await dialog.$('button=Sign out')).click();
  const revokedAt = Date.now();
  // The phone's access token has minutes left, yet notes-api refuses it within a second.
  await waitFor(async () => (await notesAs(phone)) === 401, 'notes-api to refuse the phone', 1000);
  const refusedAfter = Date.now() - revokedAt;
  assert.ok(refusedAfter < 1000, `refused after ${refusedAfter} ms`);
  await waitFor(async () => (await browser.$$('article.device')).length === 1, 'the revoked device to go');
  assert.match(await browser.$('[role="status"]').getText(), /Signed out Latchkey Desktop on demo phone/);
  const phoneToken = spawn(cliBin, ['sessions'], { env: { ...process.env, ...phone } });
  const code = await new Promise((ok) => phoneToken.on('exit', ok));
  assert.equal(code, 3, 'the revoked device is signed out');
  // What this window did itself is no news: no notification for it (the stream has had time).
  await new Promise((r) => setTimeout(r, 1500));
  assert.doesNotMatch(bus, /string "A session was signed out"/);
});

test('a replayed token leads its family with a verdict; a suspicious one is signed out', async () => {
  // Reuse: a client refreshes, then its retired token comes back from "someone else".
  const victim = await rawSignIn('demo@latchkey.local', 'latchkey/0.1.0');
  const next = await token({ grant_type: 'refresh_token', refresh_token: victim.body.refresh_token }, 'latchkey/0.1.0');
  assert.equal(next.status, 200);
  const replay = await token({ grant_type: 'refresh_token', refresh_token: victim.body.refresh_token }, 'curl/8.5.0');
  assert.equal(replay.body.error, 'invalid_grant');
  // The OS is told at once, through the notification service (org.freedesktop.Notifications).
  await waitFor(() => notified('A session looks suspicious'), 'a notification of the reuse');
  // Another session used by different software: suspicious, but still alive.
  const odd = await rawSignIn('demo@latchkey.local', 'latchkey/0.1.0');
  const moved = await token({ grant_type: 'refresh_token', refresh_token: odd.body.refresh_token }, 'python-requests/2.31');
  assert.equal(moved.status, 200);

  await (await button('Token families')).click();
  await (await heading('Token families')).waitForDisplayed();
  await waitFor(async () => (await browser.$$('.picker button.suspicious')).length >= 2, 'the suspicious families');
  // The reused family: ended by the server. It leads with who used the copy and what Latchkey
  // did; the chain, with the replay marked, waits under "Technical details".
  // Live events may re-render the list at any moment: pick (again) until the detail shows it.
  const pick = (state) => browser.$(`//ul[contains(@class,"picker")]//button[contains(@class,"suspicious") and contains(@class,"state-${state}")]`);
  await waitFor(async () => {
    await (await pick('revoked')).click();
    return /Someone else used a copy of this sign-in from curl\/8\.5\.0 at 127\.0\.0\.1\. Latchkey blocked it and signed this session out at/
      .test(await browser.$('.detail-pane .verdict').getText().catch(() => ''));
  }, 'the reuse in one sentence');
  const incident = await browser.$('.detail-pane .incident').getText();
  assert.match(incident, /Other software\s*curl\/8\.5\.0/);
  assert.match(incident, /Sign out everywhere/);
  assert.doesNotMatch(incident, /This was me|generation|family|killed/i);
  assert.ok(await browser.$('svg[aria-label*="ended by revocation"]').isExisting());
  assert.equal(await browser.$('details.technical').getAttribute('open'), null, 'the chain is a click away');
  await shot('family-reuse');
  // The chain: your app's tokens in one lane, the copy that came back in the other, each told
  // in words when chosen.
  await (await browser.$('details.technical summary')).click();
  // Reached as the keyboard reaches it (WebDriver clicks only HTML boxes, not SVG shapes).
  const replayStop = await browser.$('.chain [role="button"][aria-label^="A copy of token"]');
  await replayStop.scrollIntoView();
  await browser.execute((el) => el.focus(), replayStop);
  assert.match(await browser.$('.chain-detail').getText(), /A copy of token 1 came back .* from curl\/8\.5\.0 at 127\.0\.0\.1/);
  await shot('family-reuse-chain');
  // The live suspicious one: kill it.
  await waitFor(async () => {
    await (await pick('active')).click();
    return /different software/.test(await browser.$('.detail-pane').getText());
  }, 'the user-agent signal');
  await shot('family-suspicious');
  await (await (await browser.$('.detail-pane header')).$('button=Sign out')).click();
  const dialog = await browser.$('[role="dialog"]');
  await dialog.waitForDisplayed();
  await (await dialog.$('button=Sign out')).click();
  await waitFor(async () => /signed out/.test(await browser.$('.detail-pane header').getText()), 'the session to end');
  const dead = await token({ grant_type: 'refresh_token', refresh_token: moved.body.refresh_token }, 'python-requests/2.31');
  assert.equal(dead.body.error, 'invalid_grant');

  // A session signed out elsewhere (that client's own logout): the OS says so.
  const other = await rawSignIn('demo@latchkey.local', 'latchkey/0.1.0');
  const out = await fetch(`${issuer}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'latchkey-desktop', token: other.body.refresh_token }),
  });
  assert.equal(out.status, 200);
  await waitFor(() => notified('A session was signed out'), 'a notification of the sign-out elsewhere');
});

test('the token inspector shows claims, never the token', async () => {
  await (await button('Token inspector')).click();
  await (await heading('Token inspector')).waitForDisplayed();
  await waitFor(async () => /Expires in/.test(await browser.$('main').getText()), 'the countdown');
  const text = await browser.$('main').getText();
  assert.match(text, /sid/);
  assert.doesNotMatch(text, /eyJ|lkrt_/);
  await shot('inspector');
});

test('support mode: none from a code, then revoke with a reason and find it in the audit log', async () => {
  await rawSignIn('demo@latchkey.local', 'latchkey/0.1.0', 'demo tablet');
  await (await button('Accounts')).click();
  await (await browser.$('input[type="url"]')).setValue(issuer);
  // As on a computer whose browser cannot reach it: the code, approved in a browser elsewhere.
  await (await button('Sign in with a code instead')).click();
  const codeShown = await browser.$('.code-panel .user-code');
  await waitFor(async () => {
    const refused = await browser.$('[role="alert"].error').getText().catch(() => '');
    if (refused) throw new Error(refused);
    return codeShown.isDisplayed();
  }, 'the code to enter');
  const userCode = await codeShown.getText();
  assert.match(userCode, /^[B-Z]{4}-[B-Z]{4}$/);
  assert.match(await browser.$('.code-panel').getText(), new RegExp(`${issuer}/device`));
  assert.ok(await browser.$('.code-panel svg.qr[role="img"]').isExisting(), 'a QR code of the address');
  await shot('accounts-code');
  assert.match(await approveCode(userCode, 'support@latchkey.local'), /Your device is signed in/);
  // Signed in, but a code never carries staff powers (anyone can send someone a code): no
  // support mode until a sign-in in this computer's own browser.
  await waitFor(async () => /support@latchkey\.local/.test(await browser.$('li.card.current').getText()), 'the support account, signed in with a code');
  assert.equal(await (await button('Support')).isExisting(), false, 'no support mode from a code');
  signInAs('support@latchkey.local');
  await (await browser.$('input[type="url"]')).setValue(issuer);
  await (await button('Sign in with browser')).click();
  await (await button('Support')).waitForDisplayed({ timeout: 20_000 });
  await waitFor(() => trayMenu().includes("'Signed in as support@latchkey.local'"), 'the tray to follow the switch');
  await shot('accounts');
  await (await button('Support')).click();
  await (await browser.$('input[placeholder="alice@example.com"]')).setValue('demo@');
  await (await button('Search')).click();
  await (await browser.$('button*=demo@latchkey.local')).click();
  await waitFor(async () => (await browser.$$('.support-user article.device')).length >= 1, 'the demo user devices');
  // The session staff end: the user's tablet (the desktop's own demo session stays, for the
  // dark-theme photographs of its families below).
  const tablet = '//div[contains(@class,"support-user")]//article[.//h3[normalize-space()="demo tablet"]]';
  await waitFor(() => browser.$(tablet).isExisting(), 'the demo tablet');
  const revoke = await browser.$(`${tablet}//button[normalize-space()="Sign out"]`);
  await revoke.click();
  const dialog = await browser.$('[role="dialog"]');
  const confirm = await dialog.$('button=Sign out');
  assert.equal(await confirm.isEnabled(), false, 'no reason, no revocation');
  await (await dialog.$('textarea')).setValue('user reported a lost laptop (ticket 17)');
  await confirm.click();
  await waitFor(async () => /Signed out/.test(await browser.$('[role="status"]').getText()), 'the revocation');
  await (await button('Audit log')).click();
  await waitFor(async () => /ticket 17/.test(await browser.$('.audit').getText()), 'the audit record');
  assert.match(await browser.$('.audit').getText(), /admin\.session\.revoke/);
  await shot('support');
});

/**
 * Labels that wrap onto a second line: the text of buttons, badges, chips, tabs and form
 * labels, each meant to read as one line. A wrapped text has line boxes at two heights.
 */
async function wrappedLabels() {
  return browser.execute(() => {
    const range = document.createRange();
    const wrapped = [];
    for (const el of document.querySelectorAll('button, .badge, .chip, label > span, [role="tab"], summary, th')) {
      if (el.getClientRects().length === 0) continue;
      // Each run of text on its own: a button may hold two lines by design (a name above its
      // details), but no single label may break.
      const texts = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      for (let node = texts.nextNode(); node; node = texts.nextNode()) {
        if (!node.textContent.trim()) continue;
        range.selectNodeContents(node);
        const tops = new Set([...range.getClientRects()].filter((r) => r.width > 1).map((r) => Math.round(r.top / 4)));
        if (tops.size > 1) wrapped.push(`${el.tagName.toLowerCase()} "${node.textContent.trim().slice(0, 40)}"`);
      }
    }
    return wrapped;
  });
}

/** Every screen at 1100×760, 800×600, 1440×900 and the ends of the range (720×520, 1920×1200)
 * in the window's current theme: no error, no
 * accessibility violation, nothing wider than the window, and at 1100×760 no wrapped label. */
async function everyScreenAtEverySize(theme) {
  // The photographs at each size are kept beside the build, not in the repository.
  const sized = join(target, 'screenshots');
  mkdirSync(sized, { recursive: true });
  const screens = ['Devices', 'Token families', 'Token inspector', 'Support', 'Accounts'];
  for (const [w, h] of [[1100, 760], [800, 600], [1440, 900], [720, 520], [1920, 1200]]) {
    await browser.setWindowSize(w, h);
    await waitFor(async () => (await browser.execute(() => window.innerWidth)) <= w, `the window at ${w}×${h}`);
    for (const name of screens) {
      await (await button(name)).click();
      await (await heading(name)).waitForDisplayed();
      await new Promise((r) => setTimeout(r, 300)); // let its data arrive and lay out
      const errors = [];
      for (const e of await browser.$$('.error')) errors.push(await e.getText());
      assert.deepEqual(errors, [], `${name} at ${w}×${h} shows no error`);
      if (w === 1100) assert.deepEqual(await wrappedLabels(), [], `${name} at ${w}×${h} (${theme}): wrapped labels`);
      await shot(`${name.toLowerCase().replace(/ /g, '-')}-${w}x${h}-${theme}`, sized);
    }
  }
}

test('every screen from 720×520 to 1920×1200, light and dark: accessible, fits the window', async () => {
  const dark = () => browser.execute(() => window.matchMedia('(prefers-color-scheme: dark)').matches);
  assert.equal(await dark(), false, 'the light pass runs in the light theme');
  await everyScreenAtEverySize('light');

  // The dark pass: the same app and accounts under GTK's dark theme, which WebKitGTK reports
  // to the page as prefers-color-scheme: dark.
  await closeWindow();
  await openWindow({ GTK_THEME: 'Adwaita:dark' });
  await (await button('Accounts')).waitForDisplayed({ timeout: 15_000 });
  assert.equal(await dark(), true, 'the dark pass runs in the dark theme');
  const background = await browser.execute(() => getComputedStyle(document.documentElement).backgroundColor);
  assert.equal(background, 'rgb(21, 24, 28)', 'the page is dark (--bg)');
  await everyScreenAtEverySize('dark');

  // The reuse incident in the dark, as the README shows it.
  await browser.setWindowSize(1100, 760);
  await (await button('Accounts')).click();
  await (await browser.$('//li[contains(@class,"card")][.//strong[normalize-space()="demo@latchkey.local"]]//button[normalize-space()="Switch to"]')).click();
  await waitFor(async () => /demo@latchkey\.local/.test(await browser.$('li.card.current').getText()), 'the demo account to be current');
  await (await button('Token families')).click();
  await (await heading('Token families')).waitForDisplayed();
  // Of the families ended while suspicious, the one ended for the replay.
  const revoked = '//ul[contains(@class,"picker")]//button[contains(@class,"suspicious") and contains(@class,"state-revoked")]';
  await waitFor(async () => {
    for (const candidate of await browser.$$(revoked)) {
      await candidate.click();
      // The pane shows only the chosen family: wait for it to load, then read its verdict.
      const verdict = await browser.$('.detail-pane .verdict');
      if (!(await verdict.waitForDisplayed({ timeout: 5_000 }).catch(() => false))) continue;
      if (/Someone else used a copy/.test(await verdict.getText().catch(() => ''))) return true;
    }
    return false;
  }, 'the reuse, in the dark', 30_000);
  await shot('family-reuse-dark');
});

// A real latchkeyd (`serve --demo` on 127.0.0.1:0, its own temp data dir) for the Node suites.
// LATCHKEYD_BIN names the server binary (scripts/test builds it).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.LATCHKEYD_BIN || resolve(here, '../../target/debug/latchkeyd');

/** Starts latchkeyd; `config` is TOML for its config file; `clients` are argument lists for
 * `latchkeyd client add` run first (their `--json` registrations come back as `clients`).
 * Resolves once it prints its URL and the demo accounts' passwords. */
export async function startLatchkeyd({ config, clients = [] } = {}) {
  const home = mkdtempSync(join(tmpdir(), 'latchkey-e2e-'));
  const env = { PATH: process.env.PATH, HOME: home, XDG_DATA_HOME: join(home, 'data') };
  const registered = clients.map((args) =>
    JSON.parse(execFileSync(bin, ['client', 'add', ...args, '--json'], { env, encoding: 'utf8' })));
  const args = ['serve', '--demo', '--listen', '127.0.0.1:0'];
  if (config) {
    writeFileSync(join(home, 'latchkeyd.toml'), config);
    args.unshift('--config', join(home, 'latchkeyd.toml'));
  }
  const child = spawn(bin, args, {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  return new Promise((ok, fail) => {
    child.on('exit', (code) => fail(new Error(`latchkeyd exited with ${code}: ${out}`)));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const url = out.match(/latchkeyd is running at (\S+)/);
      const user = out.match(/user\s+\S+\s+password\s+(\S+)/);
      const staff = out.match(/support staff\s+\S+\s+password\s+(\S+)/);
      if (url && user && staff) {
        ok({
          issuer: url[1],
          password: user[1],
          supportPassword: staff[1],
          clients: registered,
          stop: () => child.kill('SIGTERM'),
        });
      }
    });
  });
}

/** The sign-in form, filled in over plain HTTP like a person's browser would. */
export async function formSignIn(url, email, password) {
  let res = await fetch(url, { redirect: 'manual' });
  assert.equal(res.status, 200, 'the sign-in page opens');
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const html = await res.text();
  const hidden = (name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
  res = await fetch(new URL('/authorize', url), {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      request: hidden('request'), csrf_token: hidden('csrf_token'), username: email, password, action: 'signin',
    }),
  });
  assert.equal(res.status, 303, 'signed in, back to the app');
  return new URL(res.headers.get('location'));
}

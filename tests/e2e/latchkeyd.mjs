// A real latchkeyd (`serve --demo` on 127.0.0.1:0, its own temp data dir) for the Node suites.
// LATCHKEYD_BIN names the server binary (scripts/test builds it).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.LATCHKEYD_BIN || resolve(here, '../../target/debug/latchkeyd');

/** Starts latchkeyd; `config` is TOML for its config file. Resolves once it prints its URL
 * and the demo accounts' passwords. */
export async function startLatchkeyd({ config } = {}) {
  const home = mkdtempSync(join(tmpdir(), 'latchkey-e2e-'));
  const args = ['serve', '--demo', '--listen', '127.0.0.1:0'];
  if (config) {
    writeFileSync(join(home, 'latchkeyd.toml'), config);
    args.unshift('--config', join(home, 'latchkeyd.toml'));
  }
  const child = spawn(bin, args, {
    env: { PATH: process.env.PATH, HOME: home, XDG_DATA_HOME: join(home, 'data') },
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
          stop: () => child.kill('SIGTERM'),
        });
      }
    });
  });
}

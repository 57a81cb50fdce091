// Completes a sign-in page the way a person would: opens the address `latchkey login
// --no-browser` printed, fills in the email and password, and follows the redirect back to the
// app's loopback listener. Used by scripts/run to sign the desktop in to the demo account.
//   node scripts/demo-signin.mjs FILE_WITH_LOGIN_OUTPUT|URL EMAIL PASSWORD
import { readFileSync } from 'node:fs';

const [file, email, password] = process.argv.slice(2);
let url = /^https?:/.test(file) ? file : undefined;
for (let i = 0; i < 300 && !url; i++) {
  try {
    url = readFileSync(file, 'utf8').match(/(http\S+\/authorize\?\S+)/)?.[1];
  } catch {}
  if (!url) await new Promise((r) => setTimeout(r, 100));
}
if (!url) throw new Error('latchkey login printed no sign-in address');
const page = await fetch(url);
const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0];
const html = await page.text();
const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))?.[1] ?? '';
const res = await fetch(new URL('/authorize', url), {
  method: 'POST',
  redirect: 'manual',
  headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
  body: new URLSearchParams({ request: field('request'), csrf_token: field('csrf_token'), username: email, password, action: 'signin' }),
});
const back = res.headers.get('location');
if (res.status !== 303 || !back) throw new Error(`sign-in refused: HTTP ${res.status}`);
await fetch(back);

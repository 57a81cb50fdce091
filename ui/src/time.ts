import { useEffect, useState } from 'react';

/** "now", re-rendered every `ms` so relative times stay fresh. */
export function useNow(ms = 15_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function relative(iso: string | null | undefined, now: number): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const s = Math.round((now - t) / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  const text =
    a < 45 ? 'just now'
    : a < 90 ? '1 minute'
    : a < 3600 ? `${Math.round(a / 60)} minutes`
    : a < 5400 ? '1 hour'
    : a < 86_400 ? `${Math.round(a / 3600)} hours`
    : a < 172_800 ? '1 day'
    : `${Math.round(a / 86_400)} days`;
  if (text === 'just now') return text;
  return future ? `in ${text}` : `${text} ago`;
}

// Times are written in the app's own language, English, by hand rather than through Intl:
// Intl's date formatting reads ICU's locale and calendar data into the web view, 3.4 MB of it
// (docs/BENCHMARKS.md), and mixed the system's date format into English sentences.
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const twoDigits = (n: number) => String(n).padStart(2, '0');

function timeOfDay(d: Date, seconds: boolean): string {
  const h = d.getHours();
  const s = seconds ? `:${twoDigits(d.getSeconds())}` : '';
  return `${h % 12 || 12}:${twoDigits(d.getMinutes())}${s} ${h < 12 ? 'AM' : 'PM'}`;
}

/** "Dec 3, 2026, 2:26:54 PM", local time; '' for no time or a malformed one. */
export function absolute(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${MONTHS[d.getMonth()]} ${d.getDate()}, ${d.getFullYear()}, ${timeOfDay(d, true)}`;
}

/** "8:43 AM", or "8:43:58 AM" with `seconds`: a time of day where the date goes without saying. */
export function clockTime(iso: string, seconds = false): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : timeOfDay(d, seconds);
}

/** Seconds since the epoch (a JWT's `exp`, a code's expiry) as an ISO time. */
export function fromEpoch(secs: number): string {
  return new Date(secs * 1000).toISOString();
}

/** "2026-12-03 08:26:53 UTC": as tickets and other logs quote times. */
export function utc(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

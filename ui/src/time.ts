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

export function absolute(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

/** "8:43 AM", or "8:43:58 AM" with `seconds`: a time of day where the date goes without saying. */
export function clockTime(iso: string, seconds = false): string {
  return new Date(iso).toLocaleTimeString([], { hour: 'numeric', minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}) });
}

/** "2026-12-03 08:26:53 UTC": as tickets and other logs quote times. */
export function utc(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

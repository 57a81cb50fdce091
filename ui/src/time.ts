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

import { useEffect, useRef } from 'react';

/**
 * Listens for key presses anywhere in the window while `active`; the latest `onKey` is called,
 * so callers need not list what it reads.
 */
export function useWindowKey(onKey: (e: KeyboardEvent) => void, active = true): void {
  const latest = useRef(onKey);
  latest.current = onKey;
  useEffect(() => {
    if (!active) return;
    const listener = (e: KeyboardEvent) => latest.current(e);
    window.addEventListener('keydown', listener);
    return () => window.removeEventListener('keydown', listener);
  }, [active]);
}

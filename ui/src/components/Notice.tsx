import { useEffect, useRef } from 'react';

/**
 * What an action did ("Revoked … on phone."). It takes the focus when it appears: the control
 * that was used may be gone with what it acted on, and a keyboard or screen-reader user goes on
 * from the outcome.
 */
export function Notice({ text }: { text: string }) {
  const ref = useRef<HTMLParagraphElement>(null);
  useEffect(() => ref.current?.focus(), [text]);
  return (
    <p ref={ref} role="status" className="notice" tabIndex={-1}>
      {text}
    </p>
  );
}

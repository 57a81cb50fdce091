import { useEffect, useRef, useState, type ReactNode } from 'react';
import { useWindowKey } from '../keys';

interface Props {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  /** Ask for a reason (support actions); the button stays disabled until one is given. */
  reasonLabel?: string;
  onConfirm: (reason: string) => void;
  onCancel: () => void;
}

const FOCUSABLE = 'button:not([disabled]), textarea, input, select, a[href], [tabindex]:not([tabindex="-1"])';

/**
 * A modal question. Escape or Cancel closes it; focus starts on the safe choice (or the reason),
 * stays inside the dialog while it is open (WAI-ARIA dialog pattern), and returns to whatever
 * opened it. A click on the backdrop cancels only while no reason has been typed: it never
 * throws away what the user wrote.
 */
export function Confirm({ title, children, confirmLabel, danger, reasonLabel, onConfirm, onCancel }: Props) {
  const dialog = useRef<HTMLDivElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const reasonInput = useRef<HTMLTextAreaElement>(null);
  const [reason, setReason] = useState('');
  useEffect(() => {
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    (reasonInput.current ?? cancel.current)?.focus();
    return () => {
      if (opener?.isConnected) opener.focus();
    };
  }, []);
  useWindowKey((e) => {
    if (e.key === 'Escape') {
      onCancel();
      return;
    }
    if (e.key !== 'Tab' || !dialog.current) return;
    const inside = Array.from(dialog.current.querySelectorAll<HTMLElement>(FOCUSABLE));
    const first = inside[0];
    const last = inside[inside.length - 1];
    if (!first || !last) return;
    const at = document.activeElement;
    if (e.shiftKey && (at === first || !dialog.current.contains(at))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (at === last || !dialog.current.contains(at))) {
      e.preventDefault();
      first.focus();
    }
  });
  const ready = !reasonLabel || reason.trim().length > 0;
  return (
    <div className="backdrop" onClick={() => reason.trim() === '' && onCancel()}>
      <div
        ref={dialog}
        className="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="confirm-title"
        onClick={(e) => e.stopPropagation()}
      >
        <h2 id="confirm-title">{title}</h2>
        <div className="dialog-body">{children}</div>
        {reasonLabel && (
          <label className="field">
            <span>{reasonLabel}</span>
            <textarea
              ref={reasonInput}
              value={reason}
              maxLength={500}
              required
              onChange={(e) => setReason(e.target.value)}
            />
          </label>
        )}
        <div className="dialog-actions">
          <button ref={cancel} type="button" onClick={onCancel}>
            Cancel
          </button>
          <button
            type="button"
            className={danger ? 'danger' : 'primary'}
            disabled={!ready}
            onClick={() => onConfirm(reason.trim())}
          >
            {confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}

import { useEffect, useRef, useState, type ReactNode } from 'react';

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

/** A modal question. Escape or Cancel closes it; focus starts on the safe choice. */
export function Confirm({ title, children, confirmLabel, danger, reasonLabel, onConfirm, onCancel }: Props) {
  const cancel = useRef<HTMLButtonElement>(null);
  const reasonInput = useRef<HTMLTextAreaElement>(null);
  const [reason, setReason] = useState('');
  useEffect(() => {
    (reasonInput.current ?? cancel.current)?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') onCancel();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onCancel]);
  const ready = !reasonLabel || reason.trim().length > 0;
  return (
    <div className="backdrop" onClick={onCancel}>
      <div
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

import type { SessionView } from './api';

/** A session's device as the user reads it. */
export function deviceName(s: SessionView): string {
  return s.device.name ?? 'an unnamed device';
}

/** "Latchkey Desktop on demo phone". */
export function appOnDevice(s: SessionView): string {
  return `${s.app} on ${deviceName(s)}`;
}

/** A session's state in the words the screens use. */
export const STATE_WORDS: Record<SessionView['state'], string> = {
  active: 'signed in',
  revoked: 'signed out',
  expired: 'expired',
};

// Typed calls to the app's Tauri commands. The web view never sees a token: only views.
import { invoke } from '@tauri-apps/api/core';
import type { EventKind } from './generated/EventKind';
import type { LinkState } from './generated/LinkState';
import type { SessionState } from './generated/SessionState';
import type { Severity } from './generated/Severity';

export type { EventKind, LinkState, SessionState, Severity };

export interface CommandError {
  code: string;
  message: string;
}

export function isCommandError(e: unknown): e is CommandError {
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e;
}

export function messageOf(e: unknown): string {
  if (isCommandError(e)) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export interface Account {
  id: string;
  label: string;
  issuer: string;
  client_id: string;
  current: boolean;
  state: 'signed_in' | 'signed_out' | 'no_token';
  reason: string | null;
  access_expires_at: number | null;
  /** Thumbprint of the device key the session is bound to (DPoP); null for a bearer session. */
  device_key: string | null;
}

export interface Accounts {
  accounts: Account[];
  keychain: string;
  keychain_persists: boolean;
}

export interface Me {
  id: string;
  email: string;
  name: string;
  role: 'user' | 'support';
  session_id: string;
}

export interface Place {
  ip: string | null;
  user_agent: string | null;
}

export interface SecurityEvent {
  id: string;
  at: string;
  kind: EventKind;
  severity: Severity;
  summary: string;
  user_id: string | null;
  session_id: string | null;
  generation: number | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
  acknowledged_at: string | null;
}

export interface Session {
  id: string;
  user_id: string;
  client_id: string;
  app: string;
  device: { name: string | null; platform: string | null; app_version: string | null };
  scope: string;
  signed_in_at: string;
  last_used_at: string;
  expires_at: string;
  first_seen: Place;
  last_seen: Place;
  state: SessionState;
  revoked: { at: string; by: string; reason: string | null } | null;
  generation: number;
  suspicious: boolean;
  signals: SecurityEvent[];
  current: boolean;
  /** Thumbprint of the device key its refresh tokens are bound to (DPoP), or null. */
  key_thumbprint: string | null;
}

export interface DeviceGroup {
  device: { name: string | null; platform: string | null; app_version: string | null };
  current: boolean;
  sessions: Session[];
}

export interface SessionList {
  devices: DeviceGroup[];
  total: number;
  next_offset: number | null;
}

export interface Generation {
  generation: number;
  state: LinkState;
  retired_reason: string | null;
  issued_at: string;
  issued_to: Place;
  used_at: string | null;
  used_by: Place | null;
  expires_at: string;
  grace_replays: number;
  events: SecurityEvent[];
}

export interface Family {
  session: Session;
  generations: Generation[];
  next_before: number | null;
  events: SecurityEvent[];
}

export interface TokenInfo {
  account: string;
  issuer: string;
  format: 'jwt' | 'opaque';
  header: Record<string, unknown> | null;
  claims: Record<string, unknown> | null;
  expires_at: number;
}

export interface UserSummary {
  id: string;
  email: string;
  name: string;
  role: string;
  created_at: string;
  disabled: boolean;
  live_sessions: number;
}

export interface AuditRecord {
  seq: number;
  at: string;
  actor_kind: string;
  actor_id: string | null;
  action: string;
  target_user_id: string | null;
  target_session_id: string | null;
  reason: string | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
  hash: string;
}

export type SessionFilter = 'all' | 'active' | 'revoked' | 'expired' | 'suspicious';

export const api = {
  accounts: () => invoke<Accounts>('accounts'),
  addAccount: (issuer: string, clientId?: string) =>
    invoke<Account>('add_account', { issuer, clientId: clientId || null }),
  cancelSignIn: () => invoke<void>('cancel_sign_in'),
  switchAccount: (account: string) => invoke<void>('switch_account', { account }),
  signOut: (account: string) => invoke<boolean>('sign_out', { account }),
  forgetAccount: (account: string) => invoke<void>('forget_account', { account }),
  me: () => invoke<Me>('me'),
  sessions: (filter: SessionFilter) => invoke<SessionList>('sessions', { filter }),
  revokeSession: (session: string) => invoke<Session>('revoke_session', { session }),
  revokeOtherSessions: () => invoke<{ revoked: string[] }>('revoke_other_sessions'),
  family: (session: string, before?: number) =>
    invoke<Family>('family', { session, before: before ?? null }),
  acknowledge: (session: string) => invoke<Session>('acknowledge', { session }),
  tokenInfo: () => invoke<TokenInfo>('token_info'),
  adminSearchUsers: (q: string) => invoke<{ users: UserSummary[] }>('admin_search_users', { q }),
  adminUserSessions: (user: string) =>
    invoke<SessionList & { user: UserSummary }>('admin_user_sessions', { user }),
  adminFamily: (session: string) => invoke<Family>('admin_family', { session }),
  adminEvents: (user?: string) =>
    invoke<{ events: SecurityEvent[] }>('admin_events', { user: user ?? null }),
  adminRevokeSession: (session: string, reason: string) =>
    invoke<Session>('admin_revoke_session', { session, reason }),
  adminRevokeAll: (user: string, reason: string) =>
    invoke<{ revoked: string[] }>('admin_revoke_all', { user, reason }),
  adminAudit: (filter: { user?: string; action?: string; before?: number }) =>
    invoke<{ records: AuditRecord[]; next_before: number | null }>('admin_audit', {
      user: filter.user ?? null,
      action: filter.action ?? null,
      before: filter.before ?? null,
    }),
};

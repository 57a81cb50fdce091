// Typed calls to the app's Tauri commands. The web view never sees a token: only views.
// Every type here is generated from the Rust types (src/generated/, by ts-rs; see
// src-tauri/src/typescript.rs): a renamed field fails `tsc`, not a screen.
import { Channel, invoke } from '@tauri-apps/api/core';
import type { Account } from './generated/Account';
import type { Accounts } from './generated/Accounts';
import type { AuditPage } from './generated/AuditPage';
import type { AuditRecord } from './generated/AuditRecord';
import type { CodeShown } from './generated/CodeShown';
import type { CommandError } from './generated/CommandError';
import type { DeviceGroup } from './generated/DeviceGroup';
import type { EventKind } from './generated/EventKind';
import type { EventList } from './generated/EventList';
import type { Family } from './generated/Family';
import type { Generation } from './generated/Generation';
import type { LinkState } from './generated/LinkState';
import type { Place } from './generated/Place';
import type { Profile } from './generated/Profile';
import type { Revoked } from './generated/Revoked';
import type { SecurityEvent } from './generated/SecurityEvent';
import type { SessionFilter } from './generated/SessionFilter';
import type { SessionList } from './generated/SessionList';
import type { SessionState } from './generated/SessionState';
import type { SessionView } from './generated/SessionView';
import type { Severity } from './generated/Severity';
import type { TokenInfo } from './generated/TokenInfo';
import type { UserList } from './generated/UserList';
import type { UserSessions } from './generated/UserSessions';
import type { UserSummary } from './generated/UserSummary';

export type {
  Account,
  Accounts,
  AuditPage,
  AuditRecord,
  CodeShown,
  CommandError,
  DeviceGroup,
  EventKind,
  EventList,
  Family,
  Generation,
  LinkState,
  Place,
  Profile,
  Revoked,
  SecurityEvent,
  SessionFilter,
  SessionList,
  SessionState,
  SessionView,
  Severity,
  TokenInfo,
  UserList,
  UserSessions,
  UserSummary,
};

export function isCommandError(e: unknown): e is CommandError {
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e;
}

export function messageOf(e: unknown): string {
  if (isCommandError(e)) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export const api = {
  accounts: () => invoke<Accounts>('accounts'),
  addAccount: (issuer: string, clientId?: string) =>
    invoke<Account>('add_account', { issuer, clientId: clientId || null }),
  /** Signs in with a code entered in a browser elsewhere; `onShown` gets the code to show. */
  addAccountWithCode: (issuer: string, clientId: string | undefined, onShown: (code: CodeShown) => void) => {
    const shown = new Channel<CodeShown>();
    shown.onmessage = onShown;
    return invoke<Account>('add_account_with_code', { issuer, clientId: clientId || null, shown });
  },
  cancelSignIn: () => invoke<void>('cancel_sign_in'),
  switchAccount: (account: string) => invoke<void>('switch_account', { account }),
  signOut: (account: string) => invoke<boolean>('sign_out', { account }),
  forgetAccount: (account: string) => invoke<void>('forget_account', { account }),
  me: () => invoke<Profile>('me'),
  sessions: (filter: SessionFilter) => invoke<SessionList>('sessions', { filter }),
  revokeSession: (session: string) => invoke<SessionView>('revoke_session', { session }),
  revokeOtherSessions: () => invoke<Revoked>('revoke_other_sessions'),
  family: (session: string, before?: number) =>
    invoke<Family>('family', { session, before: before ?? null }),
  acknowledge: (session: string) => invoke<SessionView>('acknowledge', { session }),
  tokenInfo: () => invoke<TokenInfo>('token_info'),
  adminSearchUsers: (q: string) => invoke<UserList>('admin_search_users', { q }),
  adminUserSessions: (user: string) => invoke<UserSessions>('admin_user_sessions', { user }),
  adminFamily: (session: string) => invoke<Family>('admin_family', { session }),
  adminEvents: (user?: string) => invoke<EventList>('admin_events', { user: user ?? null }),
  adminRevokeSession: (session: string, reason: string) =>
    invoke<SessionView>('admin_revoke_session', { session, reason }),
  adminRevokeAll: (user: string, reason: string) =>
    invoke<Revoked>('admin_revoke_all', { user, reason }),
  adminAudit: (filter: { user?: string; action?: string; before?: number }) =>
    invoke<AuditPage>('admin_audit', {
      user: filter.user ?? null,
      action: filter.action ?? null,
      before: filter.before ?? null,
    }),
};

// The app's own commands are listed here so that tauri-build generates a permission for each;
// a command no capability grants cannot be called from the web view.
const COMMANDS: &[&str] = &[
    "accounts",
    "add_account",
    "add_account_with_code",
    "cancel_sign_in",
    "switch_account",
    "sign_out",
    "forget_account",
    "me",
    "sessions",
    "revoke_session",
    "revoke_other_sessions",
    "family",
    "acknowledge",
    "token_info",
    "admin_search_users",
    "admin_user_sessions",
    "admin_family",
    "admin_events",
    "admin_revoke_session",
    "admin_revoke_all",
    "admin_audit",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .capabilities_path_pattern("./src-tauri/capabilities/**/*")
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build");
}

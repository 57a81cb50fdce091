//! The UI's TypeScript types (`ui/src/generated/`) are rendered by ts-rs from the Rust types the
//! commands return: latchkey-proto's API types and the desktop's own views. This test fails when
//! a committed file differs from what the Rust types render, or when a file is left over from a
//! removed type, so a stale copy cannot pass CI; `LATCHKEY_UPDATE_TS=1 cargo test -p
//! latchkey-desktop --lib typescript` rewrites them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use latchkey_proto::{
    ActorKind, ApiErrorBody, AuditPage, EventList, Family, Profile, Revoked, SessionList,
    SessionView, UserList, UserSessions,
};
use ts_rs::TS;

use crate::commands::{Accounts, CodeShown, CommandError, SessionFilter, TokenInfo};

fn generated_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/src/generated")
}

/// Every type the window receives or sends, with what they contain.
fn render(into: &Path) {
    fn all<T: TS + 'static>(into: &Path) {
        T::export_all_to(into).expect("ts-rs renders the type");
    }
    all::<Accounts>(into);
    all::<CodeShown>(into);
    all::<CommandError>(into);
    all::<SessionFilter>(into);
    all::<TokenInfo>(into);
    all::<Profile>(into);
    all::<SessionList>(into);
    all::<SessionView>(into);
    all::<Family>(into);
    all::<Revoked>(into);
    all::<EventList>(into);
    all::<UserList>(into);
    all::<UserSessions>(into);
    all::<AuditPage>(into);
    all::<ActorKind>(into);
    all::<ApiErrorBody>(into);
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap_or_default())
        })
        .collect()
}

#[test]
fn the_ui_types_are_current() {
    let fresh = tempfile::tempdir().unwrap();
    render(fresh.path());
    let rendered = files(fresh.path());
    let committed_dir = generated_dir();
    if std::env::var_os("LATCHKEY_UPDATE_TS").is_some() {
        let _ = std::fs::remove_dir_all(&committed_dir);
        std::fs::create_dir_all(&committed_dir).unwrap();
        for (name, text) in &rendered {
            std::fs::write(committed_dir.join(name), text).unwrap();
        }
        return;
    }
    let committed = files(&committed_dir);
    let stale: std::collections::BTreeSet<&String> = rendered
        .keys()
        .chain(committed.keys())
        .filter(|name| rendered.get(*name) != committed.get(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "ui/src/generated is stale ({stale:?}): run `LATCHKEY_UPDATE_TS=1 cargo test -p latchkey-desktop --lib typescript` and commit it"
    );
    assert!(rendered.contains_key("SessionView.ts") && rendered.contains_key("Account.ts"));
}

//! The contract between latchkeyd and its clients. latchkeyd writes these types, and the client
//! core, the CLI and the desktop app read them, so a renamed or removed variant breaks their
//! build rather than their output.

mod event;
mod names;
mod secret;
mod session;

pub use event::{EventKind, Severity};
pub use names::UnknownName;
pub use secret::Secret;
pub use session::{LinkState, SessionState};

/// The UI's copy of these types (`ui/src/generated/`), rendered by ts-rs. The test fails when a
/// file differs from what the Rust types render, so a stale copy cannot pass CI;
/// `LATCHKEY_UPDATE_TS=1 cargo test -p latchkey-proto` writes them.
#[cfg(test)]
mod typescript {
    use std::path::PathBuf;

    use ts_rs::TS;

    fn check<T: TS + 'static>(file: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../ui/src/generated")
            .join(file);
        let rendered = T::export_to_string().expect("ts-rs renders the type");
        if std::env::var_os("LATCHKEY_UPDATE_TS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "{} is stale: run `LATCHKEY_UPDATE_TS=1 cargo test -p latchkey-proto` and commit it",
            path.display()
        );
    }

    #[test]
    fn the_ui_types_are_current() {
        check::<crate::EventKind>("EventKind.ts");
        check::<crate::Severity>("Severity.ts");
        check::<crate::SessionState>("SessionState.ts");
        check::<crate::LinkState>("LinkState.ts");
    }
}

//! A cross-process lock per account, so the CLI and the app (or two app instances) never
//! refresh the same token at once: the server's reuse detection would rightly kill the family.

use std::fs::File;
use std::path::Path;

use crate::paths::private_dir;
use crate::{Error, Result};

/// Held while it lives; the OS releases it if the process dies.
pub struct AccountLock {
    _file: File,
}

impl AccountLock {
    /// Waits for the lock (on a blocking thread: another process may hold it for a refresh).
    pub async fn acquire(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            private_dir(dir)?;
        }
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            file.lock().map_err(|e| Error::io(&path, e))?;
            Ok(AccountLock { _file: file })
        })
        .await
        .map_err(|e| Error::Config(format!("the lock task failed: {e}")))?
    }
}

//! Where the client keeps things: profiles in the XDG config dir, locks (and the opt-in
//! insecure token file) in the XDG data dir. Never a secret in the config dir.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    /// `$XDG_CONFIG_HOME/latchkey` and `$XDG_DATA_HOME/latchkey` (or the platform's equivalents).
    pub fn from_env() -> Result<Self> {
        let config = dirs::config_dir().ok_or_else(|| {
            Error::Config("cannot tell where the config directory is (set HOME)".into())
        })?;
        let data = dirs::data_dir().ok_or_else(|| {
            Error::Config("cannot tell where the data directory is (set HOME)".into())
        })?;
        Ok(Self {
            config_dir: config.join("latchkey"),
            data_dir: data.join("latchkey"),
        })
    }

    pub fn profiles_file(&self) -> PathBuf {
        self.config_dir.join("accounts.toml")
    }

    pub fn lock_file(&self, account: &str) -> PathBuf {
        self.data_dir.join("locks").join(format!("{account}.lock"))
    }

    /// The keychain entry of an account. It names this installation (its config dir) too, so
    /// that two Latchkey setups of one user (another `XDG_CONFIG_HOME`) never share a token.
    pub fn keychain_account(&self, profile_id: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.config_dir.to_string_lossy().as_bytes());
        let install: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{profile_id}.{install}")
    }

    pub fn insecure_store(&self) -> PathBuf {
        self.data_dir.join("INSECURE-tokens.json")
    }
}

/// Creates a directory (and parents) readable only by the user.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Writes a file atomically (a temp file renamed over it), readable only by the user.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    private_dir(dir)?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(contents).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

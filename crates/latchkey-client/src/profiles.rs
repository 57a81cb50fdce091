//! Accounts: which servers the user signed in to, as whom, and which is current. Kept in
//! `accounts.toml` in the XDG config dir. No secret ever goes in this file: tokens live in the
//! keychain, under the profile's id.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::discovery::Metadata;
use crate::paths::write_private;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Stable for one account on one server: derived from the issuer and the subject.
    pub id: String,
    /// What people see: the email when the server shares it, else the subject.
    pub label: String,
    pub issuer: String,
    pub client_id: String,
    pub scope: String,
    pub subject: String,
    /// Unix seconds.
    pub added_at: i64,
    /// Set when the server ended the session (or the user logged out); the account stays
    /// listed until forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_out: Option<SignedOut>,
    /// The server's endpoints as discovered at sign-in (refreshes need no discovery).
    pub metadata: Metadata,
    /// Which keychain holds this account's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keychain: Option<crate::keychain::Backend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOut {
    pub at: i64,
    pub reason: String,
}

impl Profile {
    pub fn id_for(issuer: &str, subject: &str) -> String {
        let digest = Sha256::digest(format!("{issuer}\n{subject}").as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default, rename = "account")]
    pub accounts: Vec<Profile>,
}

impl Profiles {
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                Error::Config(format!("{} is not valid: {}", path.display(), e.message()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).expect("profiles serialize");
        let header = "# Latchkey accounts. No secrets here: tokens are in the OS keychain.\n";
        write_private(path, format!("{header}{text}").as_bytes())
    }

    pub fn find(&self, key: &str) -> Option<&Profile> {
        self.accounts.iter().find(|p| p.id == key || p.label == key)
    }

    /// The account a command is about: the one named, else the current one.
    pub fn select(&self, name: Option<&str>) -> Result<&Profile> {
        match name.or(self.current.as_deref()) {
            Some(key) => self.find(key).ok_or_else(|| {
                Error::NotSignedIn(format!(
                    "no account {key:?}; `latchkey accounts` lists them"
                ))
            }),
            None => Err(Error::NotSignedIn(
                "not signed in: run `latchkey login --issuer URL`".into(),
            )),
        }
    }

    /// Adds or replaces (same id) a profile and makes it current.
    pub fn upsert(&mut self, profile: Profile) {
        self.current = Some(profile.id.clone());
        match self.accounts.iter_mut().find(|p| p.id == profile.id) {
            Some(existing) => *existing = profile,
            None => self.accounts.push(profile),
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<Profile> {
        let at = self.accounts.iter().position(|p| p.id == id)?;
        let removed = self.accounts.remove(at);
        if self.current.as_deref() == Some(id) {
            self.current = self.accounts.first().map(|p| p.id.clone());
        }
        Some(removed)
    }
}

/// The file and its contents, re-read for every change so two processes do not undo each other.
pub struct ProfileFile {
    pub path: PathBuf,
}

impl ProfileFile {
    pub fn read(&self) -> Result<Profiles> {
        Profiles::load(&self.path)
    }

    pub fn update<T>(&self, change: impl FnOnce(&mut Profiles) -> Result<T>) -> Result<T> {
        let mut profiles = self.read()?;
        let out = change(&mut profiles)?;
        profiles.save(&self.path)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(id: &str) -> Profile {
        Profile {
            id: id.into(),
            label: format!("{id}@example.com"),
            issuer: "https://login.example.com".into(),
            client_id: "latchkey-desktop".into(),
            scope: "openid".into(),
            subject: id.into(),
            added_at: 0,
            signed_out: None,
            metadata: Metadata {
                issuer: "https://login.example.com".into(),
                authorization_endpoint: "https://login.example.com/authorize".into(),
                token_endpoint: "https://login.example.com/token".into(),
                revocation_endpoint: None,
                device_authorization_endpoint: None,
                userinfo_endpoint: None,
                scopes_supported: None,
                code_challenge_methods_supported: None,
                authorization_response_iss_parameter_supported: false,
                latchkey_account_api: None,
                dpop_signing_alg_values_supported: None,
            },
            keychain: None,
        }
    }

    #[test]
    fn profiles_round_trip_and_switch() {
        let dir = tempfile::tempdir().unwrap();
        let file = ProfileFile {
            path: dir.path().join("accounts.toml"),
        };
        file.update(|p| {
            p.upsert(profile("a"));
            p.upsert(profile("b"));
            Ok(())
        })
        .unwrap();
        let p = file.read().unwrap();
        assert_eq!(p.current.as_deref(), Some("b"));
        assert_eq!(p.select(Some("a@example.com")).unwrap().id, "a");
        assert!(p.select(Some("nobody")).is_err());
        file.update(|p| {
            p.remove("b");
            Ok(())
        })
        .unwrap();
        assert_eq!(file.read().unwrap().current.as_deref(), Some("a"));
        assert_ne!(
            Profile::id_for("https://a", "x"),
            Profile::id_for("https://b", "x")
        );
    }
}

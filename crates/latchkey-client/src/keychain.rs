//! Where refresh tokens live: the OS keychain, through `keyring` v3.
//!
//! keyring 3 is built with its platform stores named (`apple-native`, `windows-native`,
//! `linux-native-sync-persistent`, `crypto-rust`): without them it silently keeps secrets in an
//! in-memory mock. v3 rather than v4 because v4 splits every platform store into its own crate
//! with a new API, and v3's stores are what the desktop ecosystem (Tauri apps included) uses
//! today. On Linux the store is chosen explicitly: the Secret Service (GNOME Keyring, KWallet)
//! persists across reboots; with no Secret Service (a server reached over SSH, a container, a
//! service) tokens go to the user's persistent kernel keyring, which outlives sessions but not
//! a reboot, and `status` says so.
//!
//! The keychain is probed (write, read, delete) before anything is stored. With no usable
//! keychain nothing is stored at all, unless the user chose the insecure file store by name.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::paths::write_private;
use crate::{Error, Result, Secret};

/// The service name of every keychain entry; the account (profile id) is the user name.
pub const SERVICE: &str = "latchkey";

/// Windows Credential Manager holds at most 2,560 bytes per secret.
pub const MAX_SECRET_BYTES: usize = 2560;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    SecretService,
    Keyutils,
    MacosKeychain,
    WindowsCredentialManager,
    /// A plain file, chosen explicitly by the user.
    InsecureFile,
}

impl Backend {
    pub fn describe(self) -> &'static str {
        match self {
            Backend::SecretService => "Secret Service (GNOME Keyring / KWallet)",
            Backend::Keyutils => "Linux kernel keyring (keyutils)",
            Backend::MacosKeychain => "macOS Keychain",
            Backend::WindowsCredentialManager => "Windows Credential Manager",
            Backend::InsecureFile => "INSECURE plain file (chosen with --keychain insecure-file)",
        }
    }

    /// Do tokens survive a reboot?
    pub fn persists(self) -> bool {
        !matches!(self, Backend::Keyutils)
    }

    /// What becomes of tokens kept here, for `status`.
    pub fn lifetime(self) -> &'static str {
        match self {
            Backend::Keyutils => {
                "kept by the kernel: survives logging out, for 3 days after its last use, but NOT a reboot"
            }
            Backend::InsecureFile => "persistent, readable by anyone who can read your files",
            _ => "persistent",
        }
    }
}

/// Which store to use: `auto` picks the platform keychain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Choice {
    #[default]
    Auto,
    SecretService,
    Keyutils,
    InsecureFile,
}

impl std::str::FromStr for Choice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Choice::Auto),
            "secret-service" => Ok(Choice::SecretService),
            "keyutils" => Ok(Choice::Keyutils),
            "insecure-file" => Ok(Choice::InsecureFile),
            other => Err(Error::Config(format!(
                "unknown keychain {other:?}: use auto, secret-service, keyutils or insecure-file"
            ))),
        }
    }
}

/// A secret store for tokens, one entry per account.
pub trait SecretStore: Send + Sync {
    fn backend(&self) -> Backend;
    fn get(&self, account: &str) -> Result<Option<Secret<String>>>;
    fn set(&self, account: &str, value: &Secret<String>) -> Result<()>;
    fn delete(&self, account: &str) -> Result<()>;
}

fn unusable(backend: &str, e: impl std::fmt::Display) -> Error {
    Error::Keychain {
        message: format!("the {backend} is not usable: {e}"),
        fix: FIX.into(),
    }
}

const FIX: &str =
    "start a Secret Service (e.g. `gnome-keyring-daemon --start --components=secrets` in a \
     D-Bus session, or KWallet), or opt in to an unencrypted file with \
     `--keychain insecure-file` / LATCHKEY_KEYCHAIN=insecure-file";

/// Every store keeps to the smallest platform limit, so an account moves between them.
fn check_size(value: &Secret<String>) -> Result<()> {
    if value.expose().len() > MAX_SECRET_BYTES {
        return Err(Error::Config(format!(
            "a keychain entry must stay under {MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok(())
}

/// The OS keychain through `keyring`.
struct Keyring {
    backend: Backend,
}

impl Keyring {
    fn entry(&self, account: &str) -> Result<keyring::Entry> {
        let built = match self.backend {
            #[cfg(target_os = "linux")]
            Backend::SecretService => {
                keyring::secret_service::SsCredential::new_with_target(None, SERVICE, account)
                    .map(|c| keyring::Entry::new_with_credential(Box::new(c)))
            }
            _ => keyring::Entry::new(SERVICE, account),
        };
        built.map_err(|e| unusable(self.backend.describe(), e))
    }
}

impl SecretStore for Keyring {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn get(&self, account: &str) -> Result<Option<Secret<String>>> {
        match self.entry(account)?.get_password() {
            Ok(v) => Ok(Some(Secret::new(v))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(unusable(self.backend.describe(), e)),
        }
    }

    fn set(&self, account: &str, value: &Secret<String>) -> Result<()> {
        check_size(value)?;
        self.entry(account)?
            .set_password(value.expose())
            .map_err(|e| unusable(self.backend.describe(), e))
    }

    fn delete(&self, account: &str) -> Result<()> {
        match self.entry(account)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(unusable(self.backend.describe(), e)),
        }
    }
}

/// The user's persistent kernel keyring (keyrings(7), persistent-keyring(7)): one per user,
/// reachable from any session of theirs (an SSH shell, a container's shell, a service, a cron
/// job), kept until 3 days after its last use or the next reboot. It is linked into this
/// process's own keyring on every use, so this process possesses it: whether the caller has a
/// session keyring (a desktop login, `keyctl session`) or none at all makes no difference.
#[cfg(target_os = "linux")]
struct KernelKeyring;

#[cfg(target_os = "linux")]
impl KernelKeyring {
    fn ring() -> Result<linux_keyutils::KeyRing> {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        KeyRing::get_persistent(KeyRingIdentifier::Process).map_err(|e| {
            unusable(
                Backend::Keyutils.describe(),
                format!("no persistent keyring: {e}"),
            )
        })
    }

    fn description(account: &str) -> String {
        format!("{SERVICE}:{account}")
    }

    /// The entry keyring 3's own keyutils store wrote (under another name, in the session
    /// keyring), before this store.
    fn legacy(account: &str) -> keyring::Result<keyring::Entry> {
        keyring::keyutils::KeyutilsCredential::new_with_target(None, SERVICE, account)
            .map(|c| keyring::Entry::new_with_credential(Box::new(c)))
    }

    /// An account stored by keyring 3's keyutils store: moved here, so that it can be read,
    /// rotated and deleted like any other.
    fn adopt_legacy(account: &str) -> Result<Option<Secret<String>>> {
        let Ok(legacy) = Self::legacy(account) else {
            return Ok(None);
        };
        let Ok(value) = legacy.get_password() else {
            return Ok(None);
        };
        let value = Secret::new(value);
        KernelKeyring.set(account, &value)?;
        let _ = legacy.delete_credential();
        Ok(Some(value))
    }

    fn find(account: &str) -> Result<Option<linux_keyutils::Key>> {
        use linux_keyutils::KeyError;
        match Self::ring()?.search(&Self::description(account)) {
            Ok(key) => Ok(Some(key)),
            // An entry revoked or expired by someone else (keyctl) is as good as gone.
            Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                Ok(None)
            }
            Err(e) => Err(unusable(Backend::Keyutils.describe(), e)),
        }
    }
}

#[cfg(target_os = "linux")]
impl SecretStore for KernelKeyring {
    fn backend(&self) -> Backend {
        Backend::Keyutils
    }

    fn get(&self, account: &str) -> Result<Option<Secret<String>>> {
        let Some(key) = Self::find(account)? else {
            return Self::adopt_legacy(account);
        };
        let bytes = key
            .read_to_vec()
            .map_err(|e| unusable(Backend::Keyutils.describe(), e))?;
        String::from_utf8(bytes)
            .map(|v| Some(Secret::new(v)))
            .map_err(|_| unusable(Backend::Keyutils.describe(), "an entry is not text"))
    }

    fn set(&self, account: &str, value: &Secret<String>) -> Result<()> {
        check_size(value)?;
        // add_key replaces the payload of an entry of the same description in the keyring.
        Self::ring()?
            .add_key(&Self::description(account), value.expose().as_bytes())
            .map(|_| ())
            .map_err(|e| unusable(Backend::Keyutils.describe(), e))
    }

    fn delete(&self, account: &str) -> Result<()> {
        if let Ok(legacy) = Self::legacy(account) {
            let _ = legacy.delete_credential();
        }
        if let Some(key) = Self::find(account)? {
            // Its only link: unlinked, the kernel destroys it.
            Self::ring()?
                .unlink_key(key)
                .map_err(|e| unusable(Backend::Keyutils.describe(), e))?;
        }
        Ok(())
    }
}

/// The explicitly insecure store: one JSON file, mode 0600. Reported as such by `status`.
struct InsecureFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl InsecureFile {
    fn read(&self) -> Result<BTreeMap<String, String>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Config(format!("{} is damaged: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    fn write(&self, map: &BTreeMap<String, String>) -> Result<()> {
        let bytes = serde_json::to_vec(map).expect("strings serialize");
        write_private(&self.path, &bytes)
    }
}

impl SecretStore for InsecureFile {
    fn backend(&self) -> Backend {
        Backend::InsecureFile
    }

    fn get(&self, account: &str) -> Result<Option<Secret<String>>> {
        let _guard = self.lock.lock().expect("store lock");
        Ok(self.read()?.remove(account).map(Secret::new))
    }

    fn set(&self, account: &str, value: &Secret<String>) -> Result<()> {
        check_size(value)?;
        let _guard = self.lock.lock().expect("store lock");
        let mut map = self.read()?;
        map.insert(account.into(), value.expose().clone());
        self.write(&map)
    }

    fn delete(&self, account: &str) -> Result<()> {
        let _guard = self.lock.lock().expect("store lock");
        let mut map = self.read()?;
        if map.remove(account).is_some() {
            self.write(&map)?;
        }
        Ok(())
    }
}

/// Writes, reads back and deletes a probe entry: proof the store really keeps secrets.
fn probe(store: &dyn SecretStore) -> Result<()> {
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("probe-{}-{n}", std::process::id());
    let value = Secret::new(format!("latchkey probe {name}"));
    store.set(&name, &value)?;
    let back = store.get(&name)?;
    store.delete(&name)?;
    if back.as_ref() != Some(&value) {
        return Err(unusable(
            store.backend().describe(),
            "a value written could not be read back",
        ));
    }
    Ok(())
}

fn platform_default() -> Backend {
    if cfg!(target_os = "macos") {
        Backend::MacosKeychain
    } else if cfg!(target_os = "windows") {
        Backend::WindowsCredentialManager
    } else {
        Backend::SecretService
    }
}

/// The chosen store without a probe, for commands that only use an account's existing entry
/// (`latchkey token` must answer in a few milliseconds): `remembered` is the backend the
/// account was stored in. A broken keychain still fails, on first use, with the same fix.
pub fn open_unprobed(
    choice: Choice,
    insecure_path: PathBuf,
    remembered: Option<Backend>,
) -> Box<dyn SecretStore> {
    let backend = match choice {
        Choice::Auto => remembered.unwrap_or_else(platform_default),
        Choice::SecretService => Backend::SecretService,
        Choice::Keyutils => Backend::Keyutils,
        Choice::InsecureFile => Backend::InsecureFile,
    };
    match backend {
        Backend::InsecureFile => Box::new(InsecureFile {
            path: insecure_path,
            lock: Mutex::new(()),
        }),
        #[cfg(target_os = "linux")]
        Backend::Keyutils => Box::new(KernelKeyring),
        backend => Box::new(Keyring { backend }),
    }
}

/// Opens and probes the chosen store.
pub fn open(choice: Choice, insecure_path: PathBuf) -> Result<Box<dyn SecretStore>> {
    let probed = |choice| -> Result<Box<dyn SecretStore>> {
        let store = open_unprobed(choice, insecure_path.clone(), None);
        probe(store.as_ref())?;
        Ok(store)
    };
    match probed(choice) {
        // Headless Linux: the kernel keyring still beats nothing, and status says it does
        // not survive a reboot. With neither, both reasons are told.
        Err(first) if choice == Choice::Auto && cfg!(target_os = "linux") => {
            probed(Choice::Keyutils).map_err(|second| match (first, second) {
                (Error::Keychain { message: a, fix }, Error::Keychain { message: b, .. }) => {
                    Error::Keychain {
                        message: format!("{a}; and {b}"),
                        fix,
                    }
                }
                (first, _) => first,
            })
        }
        other => other,
    }
}

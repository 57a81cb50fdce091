//! Opening the sign-in page: the system browser in the product, something else in tests.

/// Shows the authorization URL to the user.
pub trait Browser: Send + Sync {
    fn open(&self, url: &str) -> std::io::Result<()>;
}

/// The user's default browser.
pub struct SystemBrowser;

impl Browser for SystemBrowser {
    fn open(&self, url: &str) -> std::io::Result<()> {
        open::that_detached(url)
    }
}

/// Prints the URL for the user to open (`--no-browser`, or a machine without a desktop).
pub struct PrintUrl;

impl Browser for PrintUrl {
    fn open(&self, url: &str) -> std::io::Result<()> {
        eprintln!("Open this address in a browser to sign in:\n\n  {url}\n");
        Ok(())
    }
}

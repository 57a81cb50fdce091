//! Opening the sign-in page: the system browser in the product, something else in tests.

/// Shows the authorization URL to the user.
pub trait Browser: Send + Sync {
    fn open(&self, url: &str) -> std::io::Result<()>;
}

/// The user's browser: the command in `$BROWSER` if set (the Unix convention, also how tests
/// and kiosks substitute their own), else the desktop's default browser.
pub struct SystemBrowser;

impl Browser for SystemBrowser {
    fn open(&self, url: &str) -> std::io::Result<()> {
        let chosen = std::env::var("BROWSER").ok();
        match chosen
            .as_deref()
            .and_then(|b| b.split(':').find(|c| !c.trim().is_empty()))
        {
            Some(command) => std::process::Command::new(command.trim())
                .arg(url)
                .stdin(std::process::Stdio::null())
                .spawn()
                .map(|_| ()),
            None => open::that_detached(url),
        }
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

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // A few cards and lists need no GPU compositing; without it WebKitGTK's web process keeps
    // about 90 MB less (docs/BENCHMARKS.md). Set the variable to 0 to have it back.
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none() {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
    // The page is this app's own small UI, not the web: JavaScriptCore's interpreter runs it
    // as fast to the first screen as its JIT tiers do, and without them the web process keeps
    // less memory and has no JIT compiler to attack, as in WebKit's Lockdown Mode
    // (docs/BENCHMARKS.md). Set JSC_useJIT=1 to have the JIT back.
    #[cfg(target_os = "linux")]
    if std::env::var_os("JSC_useJIT").is_none() {
        std::env::set_var("JSC_useJIT", "0");
    }
    latchkey_desktop::run();
}

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // A few cards and lists need no GPU compositing; without it WebKitGTK's web process keeps
    // about 90 MB less (docs/BENCHMARKS.md). Set the variable to 0 to have it back.
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none() {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
    // The page's scripts are light and short-lived: JavaScriptCore's optimizing tiers (DFG,
    // FTL) never pay for the memory they reserve in the web process (docs/BENCHMARKS.md).
    // The interpreter and baseline JIT stay. Set either variable to have them back.
    #[cfg(target_os = "linux")]
    for tier in ["JSC_useDFGJIT", "JSC_useFTLJIT"] {
        if std::env::var_os(tier).is_none() {
            std::env::set_var(tier, "0");
        }
    }
    latchkey_desktop::run();
}

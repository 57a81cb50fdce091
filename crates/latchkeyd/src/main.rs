// glibc's allocator was about a tenth of the refresh path's CPU under load (many small,
// short-lived allocations across threads); mimalloc does the same work for less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    latchkeyd::cli::main()
}

fn main() -> std::process::ExitCode {
    latchkeyd::cli::main()
}

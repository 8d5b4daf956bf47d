//! The `xoauth-relay` binary: everything happens in the library's `cli` module.

fn main() -> std::process::ExitCode {
    xoauth_relay::cli::main()
}

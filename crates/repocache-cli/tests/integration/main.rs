//! The CLI's integration tests in one binary (ripgrep's layout: one module per suite, one link
//! instead of one per file). One suite: `cargo test -p repocache-cli --test integration cli::`.
//! The binary under test runs as a child process with its own environment; `redaction_props`
//! installs its capturing subscriber per thread (`with_default`), never process-wide.

mod cli;
mod credentials;
mod endpoint;
mod library;
mod redaction_props;
mod relay;
mod run;
mod warm;

//! apisim's integration tests in one binary (ripgrep's layout: one module per suite, one link
//! instead of one per file). One suite: `cargo test -p apisim --test integration protocol::`.
//! None of them sets process-wide state: each starts its own apisim on 127.0.0.1 port 0.

mod binary;
mod common;
mod exec;
mod faults;
mod kube_client;
mod kubectl;
mod policy;
mod protocol;
mod validation;
mod watcher;

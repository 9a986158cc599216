//! The example operator's integration tests in one binary (ripgrep's layout: one module per
//! suite). One suite: `cargo test -p glasskube-operator-example --test integration operator::`.
//! `init_tracing` installs the process's subscriber once, the same quiet one for every test.

mod binary;
mod operator;

//! glasskube-api's integration tests in one binary (ripgrep's layout: one module per suite).
//! One suite: `cargo test -p glasskube-api --test integration crds::`.

mod crds;
mod credentials;
mod fixtures;

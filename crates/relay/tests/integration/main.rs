//! The relay's integration tests in one binary (one module per suite):
//! `cargo test -p repocache-relay --test integration authorize::`. Each test starts its own apisim
//! on 127.0.0.1 port 0.

mod authorize;

//! The relay in front of apisim (127.0.0.1, port 0): its answers against apisim's own, watches
//! served from its hubs, clients nobody here wrote (kubectl, kube-rs), and what the API server
//! pays for many clients; caller authorization (`authorize::`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod authorize;
mod clients;
mod common;
mod exec;
mod gate;
mod kubectl;
mod python;
mod reads;
mod upgrade;
mod watch;

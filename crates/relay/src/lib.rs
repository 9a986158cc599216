//! `repocache-relay`: a Kubernetes-compatible read endpoint in front of an API server. It lists and
//! watches each cached kind once (through repocache's reflector) and serves GET, LIST and WATCH of
//! those kinds to any number of local clients (kubectl, client-go programs, scripts, other
//! repocache processes) from the cache's snapshots; everything else is proxied upstream unchanged.
//! In the data path it sits after the cache: API server → reflector → snapshot → relay → clients.

pub mod authorize;

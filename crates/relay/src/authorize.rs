//! Who may read what through the relay: callers authenticated with a TokenReview and each cached
//! read checked with a SubjectAccessReview against the upstream API server, decisions cached for a
//! short time.

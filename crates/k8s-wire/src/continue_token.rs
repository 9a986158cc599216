//! Continue tokens of paginated LISTs, in the format apisim mints: `<snapshot>.<offset>`, the id
//! of the list snapshot the pages are cut from and the position of the next page in it. The
//! token is opaque to clients (upstream's is base64 of an etcd key); only the server reads it.

/// A continue key that does not have the `<snapshot>.<offset>` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("continue key is not valid: {0}")]
pub struct ContinueError(pub String);

/// A decoded continue token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContinueToken {
    /// The list snapshot the pages are cut from.
    pub snapshot: u64,
    /// Where the next page starts in it.
    pub offset: usize,
}

impl ContinueToken {
    /// The token's text: `<snapshot>.<offset>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.snapshot, self.offset)
    }

    /// Reads a token; the error carries upstream's message (`continue key is not valid: …`).
    pub fn decode(token: &str) -> Result<Self, ContinueError> {
        token
            .split_once('.')
            .and_then(|(a, b)| {
                Some(ContinueToken {
                    snapshot: a.parse().ok()?,
                    offset: b.parse().ok()?,
                })
            })
            .ok_or_else(|| ContinueError(token.to_owned()))
    }
}

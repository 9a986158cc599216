//! `repocache relay`: a Kubernetes-compatible read endpoint for every local client, one LIST and
//! one WATCH per kind upstream (see the `repocache-relay` crate).

use std::path::Path;

use glasskube_api::kinds::{GlasskubeKind, KindScope, KindVisitor, visit_kinds};
use repocache_relay::{Listen, Relay, RelayBuilder};

use crate::kinds::Kind;

/// Registers `kinds` (every Glasskube kind when empty) with `builder`.
pub fn register(builder: RelayBuilder, kinds: &[Kind]) -> RelayBuilder {
    type Add = fn(RelayBuilder) -> RelayBuilder;
    fn add<K: GlasskubeKind>(builder: RelayBuilder) -> RelayBuilder {
        builder.kind_scoped::<K>(<K::Scope as KindScope>::NAMESPACED)
    }
    struct Register<'a> {
        adds: Vec<Add>,
        kinds: &'a [Kind],
    }
    impl KindVisitor for Register<'_> {
        fn visit<K: GlasskubeKind>(&mut self) {
            let plural = K::plural(&());
            if self.kinds.is_empty() || self.kinds.iter().any(|k| k.plural() == plural) {
                self.adds.push(add::<K>);
            }
        }
    }
    let mut visitor = Register {
        adds: Vec::new(),
        kinds,
    };
    visit_kinds(&mut visitor);
    visitor.adds.into_iter().fold(builder, |b, add| add(b))
}

/// The loud line the relay prints at start: whom it serves, with whose identity.
pub fn banner(relay: &Relay, server: &str, context: &str, authorize: bool) -> String {
    let kinds = relay.kinds().join(", ");
    let at = relay.listen_addr();
    if authorize {
        format!(
            "repocache relay on {at} in front of {server}: caching {kinds}.\n\
             AUTHORIZE MODE: every caller must send a bearer token; cached reads are checked with \
             TokenReview + SubjectAccessReview, everything else goes upstream with the caller's own token."
        )
    } else {
        format!(
            "repocache relay on {at} in front of {server}: caching {kinds}.\n\
             SERVES ONLY THE LOCAL USER: every request is answered or passed upstream with the \
             credentials of context {context:?} (like kubectl proxy); anyone who can connect to \
             {at} reads and writes what that identity may. Use --authorize to check each caller."
        )
    }
}

/// Writes `text` to `path`, readable by the owner only (it points at a relay that serves with
/// the relay's credentials).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

/// Parses `--listen`.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    text.parse::<Listen>().map_err(|e| e.to_string())
}

/// A client for the cluster of `kubeconfig`/`context` without any credentials (TLS settings
/// kept): in `--authorize` mode the relay passes requests upstream with the caller's own
/// `Authorization` header, never its own.
pub async fn client_without_credentials(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    use anyhow::Context as _;
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        ..kube::config::KubeConfigOptions::default()
    };
    let mut config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options).await?
        }
        None => kube::Config::from_kubeconfig(&options).await?,
    };
    config.auth_info = kube::config::AuthInfo::default();
    Ok(kube::Client::try_from(config)?)
}

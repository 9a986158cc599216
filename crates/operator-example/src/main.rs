//! `glasskube-operator-example`: runs the example operator against a cluster (kubeconfig,
//! in-cluster or default configuration) or, with `--embedded`, against an apisim seeded with the
//! project's fixtures and generated packages. Ctrl-C stops it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use glasskube_operator_example::{Config, demo, run};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config as KubeConfig};
use tracing::info;

/// How many packages `--embedded` generates on top of the fixtures' three.
const EMBEDDED_PACKAGES: usize = 47;

/// An example operator on repocache: writes a RepositoryReady condition on every Package and
/// ClusterPackage, reading repositories and packages from in-process caches.
#[derive(Parser, Debug)]
#[command(name = "glasskube-operator-example", version)]
struct Args {
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "PATH", conflicts_with = "embedded")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME", conflicts_with = "embedded")]
    context: Option<String>,
    /// Run against an embedded apisim seeded with the fixtures and generated packages.
    #[arg(long)]
    embedded: bool,
    /// Reconcile every package again every N seconds (default: only on change).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    requeue_secs: Option<u64>,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => {
            // --help, --version
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let rendered = error.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "glasskube-operator-example: {}",
                line.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The client's builder logs every failed request at ERROR, and the failure is
                // reported anyway: keep the one-line error of an unreachable cluster one line.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
                }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("glasskube-operator-example: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(operate(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("glasskube-operator-example: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text its parent already shows.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

async fn operate(args: Args) -> anyhow::Result<()> {
    let config = Config::default().requeue(args.requeue_secs.map(Duration::from_secs));
    let shutdown = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => info!("Ctrl-C: shutting down"),
            Err(error) => tracing::error!(%error, "cannot listen for Ctrl-C; shutting down"),
        }
    };
    if args.embedded {
        let seed = apisim::ServerConfig::default()
            .with_seed_yaml(apisim::seed::REPOSITORIES_YAML)
            .and_then(|c| c.with_seed_yaml(apisim::seed::PACKAGES_YAML))
            .context("the fixtures do not load")?
            .with_seed(demo::generated_packages(EMBEDDED_PACKAGES));
        let server = apisim::Server::start(seed)
            .await
            .context("cannot start the embedded apisim")?;
        info!(
            url = server.url(),
            "embedded apisim started (fixtures + {EMBEDDED_PACKAGES} generated packages)"
        );
        let result = run(server.client(), config, shutdown).await;
        server.shutdown().await;
        return result.context("operator failed");
    }
    let client = cluster_client(args.kubeconfig, args.context).await?;
    run(client, config, shutdown)
        .await
        .context("operator failed")
}

/// A client for the cluster the flags name, checked with one `GET /version`.
async fn cluster_client(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> anyhow::Result<Client> {
    let options = KubeConfigOptions {
        context: context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = match (&kubeconfig, &context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            KubeConfig::from_custom_kubeconfig(file, &options)
                .await
                .with_context(|| format!("cannot use kubeconfig {}", path.display()))?
        }
        (None, Some(_)) => KubeConfig::from_kubeconfig(&options)
            .await
            .context("cannot load the kubeconfig")?,
        (None, None) => KubeConfig::infer()
            .await
            .context("no cluster configured (use --kubeconfig, or --embedded)")?,
    };
    config.connect_timeout = Some(Duration::from_secs(5));
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).context("cannot build a client for the cluster")?;
    let version = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .map_err(|_| anyhow::anyhow!("cluster at {url} did not answer within 10s"))?
        .with_context(|| format!("cannot reach the cluster at {url}"))?;
    info!(%url, version = %version.git_version, "connected");
    Ok(client)
}

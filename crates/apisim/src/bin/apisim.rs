//! `apisim`: run the simulated Kubernetes API server by hand.
//!
//! ```text
//! apisim serve --port 8001 --seed fixtures/packagerepositories.yaml --seed fixtures/packages.yaml \
//!     --kubeconfig /tmp/apisim.kubeconfig [--policy fixtures/policy.yaml --tls]
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "apisim",
    version,
    about = "A simulated Kubernetes API server (list/watch protocol, accounting, faults)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve on 127.0.0.1 until Ctrl-C.
    Serve {
        /// Port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Multi-document YAML seed file (repeatable).
        #[arg(long = "seed", value_name = "FILE", num_args = 1..)]
        seed: Vec<PathBuf>,
        /// Write a kubeconfig for kubectl to this path.
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// Milliseconds between watch bookmarks.
        #[arg(long, default_value_t = 1000)]
        bookmark_interval_ms: u64,
        /// Events kept for watch resumption.
        #[arg(long, default_value_t = 1000)]
        history: usize,
        /// Authentication and authorization policy file (YAML; see `apisim::policy`): every
        /// request then needs a known bearer token (401) and a rule allowing it (403), and the
        /// TokenReview and SubjectAccessReview APIs are served.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Serve HTTPS with apisim's self-signed test certificate (the kubeconfig skips
        /// verification); kubectl sends `--token` only over TLS.
        #[arg(long)]
        tls: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors.
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            let _ = writeln!(
                std::io::stderr(),
                "apisim: {}",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "apisim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Serve {
        port,
        seed,
        kubeconfig,
        bookmark_interval_ms,
        history,
        policy,
        tls,
    } = cli.command;
    let mut config = apisim::ServerConfig::default()
        .with_port(port)
        .with_history_size(history)
        .with_bookmark_interval(Duration::from_millis(bookmark_interval_ms));
    for path in &seed {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        config = config
            .with_seed_yaml(&text)
            .with_context(|| format!("loading {}", path.display()))?;
    }
    if tls {
        config = config.with_tls();
    }
    if let Some(path) = &policy {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        config = config
            .with_policy_yaml(&text)
            .with_context(|| format!("loading {}", path.display()))?;
    }
    let server = apisim::Server::start(config)
        .await
        .context("starting server")?;
    if let Some(path) = &kubeconfig {
        server
            .write_kubeconfig(path)
            .with_context(|| format!("writing kubeconfig {}", path.display()))?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", server.url())?;
        out.flush()?;
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}

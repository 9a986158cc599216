//! `repocache`: dump, verify and watch a repocache cache, and run the newcomer's demo.
#![allow(clippy::print_stdout)]

use std::io::{IsTerminal as _, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use repocache::debug::{CacheView, DebugServer};
use repocache_cli::demo::{self, DemoConfig, Progress};
use repocache_cli::kinds::Kind;
use repocache_cli::source::{Caches, ClusterArgs, Endpoint, cluster_client};
use repocache_cli::table::{Output, write_dump};
use repocache_cli::watch::Follower;
use repocache_cli::{EXIT_DRIFT, EXIT_ERROR, EXIT_OK, parse_duration, parse_interval, verify};

const AFTER_HELP: &str = "\
Exit codes:
  0  success (verify: the cache and the server agree)
  1  verify found drift between the cache and the server
  2  error: bad flag or kind, unreachable endpoint or cluster, refused token (401), timeout

Kinds (--kind): packagerepositories, packages (pkg), clusterpackages (clpkg), packageinfos (pkgi);
singular names and kind names (PackageRepository) work too.

Credentials: inline passwords, tokens and usernames, URL userinfo and Secret data print as
<redacted> unless --show-secrets; the kubectl last-applied annotation is left out. In -o json/yaml
each one is {redacted: <redacted>}, an object, which the API server refuses where the schema wants a
string: applying such a dump back fails for objects with credentials instead of overwriting them.
With --endpoint, --show-secrets asks the endpoint for them (?secrets=true); an endpoint reveals
them only if its process started it with allow_secrets, otherwise the request fails (403).

Examples:
  repocache demo                                     # the two runs side by side, ~30 s
  repocache dump --kubeconfig ~/.kube/config         # PackageRepositories from a cluster
  repocache dump --endpoint http://127.0.0.1:9464 -o wide
  repocache verify --endpoint http://127.0.0.1:9464 --kubeconfig ~/.kube/config
  repocache watch --kind pkgi";

/// Inspect repocache caches: dump what a cache holds, verify it against the API server, watch
/// it change; or run the demo that shows what the cache saves.
#[derive(Parser, Debug)]
#[command(name = "repocache", version, after_help = AFTER_HELP)]
struct Cli {
    /// Log the library's diagnostics to stderr (-v warnings, -vv info, -vvv debug; RUST_LOG
    /// overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the objects a cache holds, with a line about the cache's state.
    Dump(DumpArgs),
    /// Compare a cache with a live LIST; print every drift (exit 1 when there is one).
    Verify(VerifyArgs),
    /// Print one line per change the cache sees (added, updated, deleted) until interrupted.
    Watch(WatchArgs),
    /// Run the demo: the same install uncached (client-go's rate limit) and through repocache.
    Demo(DemoArgs),
}

/// Where the cache is: a process's debug endpoint, or a fresh one built from a cluster.
#[derive(Args, Debug)]
struct SourceArgs {
    /// The debug endpoint of a running process, e.g. http://127.0.0.1:9464.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The debug endpoint's bearer token.
    #[arg(long, env = "REPOCACHE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// How long to wait for a fresh cache to sync (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// The kind: plural, singular, kind name or short name.
    #[arg(short, long, default_value = "packagerepositories")]
    kind: String,
    /// Every Glasskube kind (with --endpoint: every cache the endpoint serves).
    #[arg(long, conflicts_with = "kind")]
    all: bool,
}

impl SourceArgs {
    fn cluster(&self) -> ClusterArgs {
        ClusterArgs {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }

    fn kind(&self) -> anyhow::Result<Kind> {
        Ok(self.kind.parse::<Kind>()?)
    }

    fn kinds(&self) -> anyhow::Result<Vec<Kind>> {
        if self.all {
            Ok(Kind::ALL.to_vec())
        } else {
            Ok(vec![self.kind()?])
        }
    }

    fn endpoint(&self) -> anyhow::Result<Option<Endpoint>> {
        self.endpoint
            .as_deref()
            .map(|url| Endpoint::new(url, self.token.clone()))
            .transpose()
    }
}

#[derive(Args, Debug)]
struct DumpArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Print credentials instead of <redacted> (the output can then overwrite them when applied).
    #[arg(long)]
    show_secrets: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// On drift, wait this long and compare again; report only drift that persists (0: report
    /// at once).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    grace: Duration,
}

#[derive(Args, Debug)]
struct WatchArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// With --endpoint: how often to poll it (one request each). A cache built from the cluster
    /// is followed through its subscription instead: every change, as it is published.
    /// Must be longer than zero.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    interval: Duration,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Packages to install.
    #[arg(short = 'n', long, default_value_t = 6)]
    packages: usize,
    /// Levels of dependencies each install resolves.
    #[arg(long, default_value_t = 2)]
    depth: usize,
    /// Packages in the generated catalogue.
    #[arg(long, default_value_t = 40)]
    catalogue: usize,
    /// The uncached client's rate limit in requests per second (client-go's default: 5).
    #[arg(long, default_value_t = 5.0)]
    qps: f64,
    /// The uncached client's burst (client-go's default: 10).
    #[arg(long, default_value_t = 10)]
    burst: u32,
    /// After the runs, keep apisim and the caches up with a debug endpoint on this address
    /// (e.g. 127.0.0.1:9464) until interrupted, to try dump, verify and watch on.
    #[arg(long, value_name = "ADDR")]
    debug_addr: Option<SocketAddr>,
    /// Allow --debug-addr to bind a non-loopback address (needs --token).
    #[arg(long, requires = "debug_addr")]
    allow_remote: bool,
    /// The bearer token the debug endpoint requires on /debug/* and /metrics (required with
    /// --allow-remote).
    #[arg(
        long,
        env = "REPOCACHE_TOKEN",
        hide_env_values = true,
        requires = "debug_addr"
    )]
    token: Option<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                return if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(EXIT_ERROR as u8)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line: clap's first line, without its usage block.
            let rendered = err.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("error: invalid arguments");
            eprintln!("{first} (see repocache --help)");
            return ExitCode::from(EXIT_ERROR as u8);
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR as u8);
        }
    };
    let code = match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            let message = format!("{err:#}").replace('\n', " ");
            eprintln!("error: {message}");
            EXIT_ERROR
        }
    };
    // Reflector tasks may still be winding down; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(200));
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "off",
        1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Dump(args) => dump(args).await,
        Command::Verify(args) => verify_cmd(args).await,
        Command::Watch(args) => watch(args).await,
        Command::Demo(args) => demo_cmd(args).await,
    }
}

async fn dump(args: DumpArgs) -> anyhow::Result<i32> {
    let kinds = args.source.kinds()?;
    let reports = match args.source.endpoint()? {
        Some(endpoint) => {
            let kind = (!args.source.all).then_some(kinds[0]);
            endpoint.reports(kind, args.show_secrets).await?
        }
        None => {
            let caches =
                Caches::from_cluster(&args.source.cluster(), &kinds, args.source.timeout).await?;
            let reports = caches.reports(args.show_secrets);
            caches.stop().await;
            reports
        }
    };
    let mut out = std::io::stdout().lock();
    write_dump(&mut out, &reports, args.output)?;
    out.flush()?;
    Ok(EXIT_OK)
}

async fn verify_cmd(args: VerifyArgs) -> anyhow::Result<i32> {
    let kinds = args.source.kinds()?;
    let endpoint = args.source.endpoint()?;
    let (client, server) = cluster_client(&args.source.cluster()).await?;
    let caches = match endpoint {
        Some(_) => None,
        None => Some(Caches::start(client.clone(), &server, &kinds, args.source.timeout).await?),
    };
    let mut out = std::io::stdout().lock();
    let mut in_sync = true;
    for kind in kinds {
        let mut attempt = 0;
        loop {
            let report = match (&endpoint, &caches) {
                (Some(endpoint), _) => endpoint
                    .reports(Some(kind), false)
                    .await?
                    .into_iter()
                    .next()
                    .with_context(|| format!("the endpoint has no {} cache", kind.plural()))?,
                (None, Some(caches)) => caches
                    .reports(false)
                    .into_iter()
                    .find(|r| r.kind == kind.name())
                    .with_context(|| format!("no {} cache", kind.plural()))?,
                (None, None) => bail!("no cache to verify"),
            };
            let (live, live_rv) = verify::live_list(&client, kind).await?;
            let objects = verify::objects_of(&report)?;
            let drifts = verify::compare(objects, &live);
            if !drifts.is_empty() && attempt == 0 && !args.grace.is_zero() {
                attempt += 1;
                tokio::time::sleep(args.grace).await;
                continue;
            }
            writeln!(out, "{}", repocache_cli::table::header_line(&report))?;
            in_sync &= verify::report(
                &mut out,
                kind,
                report.resource_version.as_deref(),
                objects.len(),
                &live_rv,
                &drifts,
            )?;
            break;
        }
    }
    out.flush()?;
    if let Some(caches) = caches {
        caches.stop().await;
    }
    Ok(if in_sync { EXIT_OK } else { EXIT_DRIFT })
}

async fn watch(args: WatchArgs) -> anyhow::Result<i32> {
    let kind = args.source.kind()?;
    let endpoint = args.source.endpoint()?;
    let caches = match &endpoint {
        Some(_) => None,
        None => {
            Some(Caches::from_cluster(&args.source.cluster(), &[kind], args.source.timeout).await?)
        }
    };
    let view: Option<CacheView> = caches
        .as_ref()
        .and_then(|c| c.views.first().map(|(_, v)| v.clone()));
    let redactor: repocache::debug::Redactor = std::sync::Arc::new(repocache_cli::redact);
    let snapshot =
        async |view: &Option<CacheView>| -> anyhow::Result<(u64, Vec<serde_json::Value>, String)> {
            match (view, &endpoint) {
                (Some(view), _) => {
                    let (generation, objects) = view.objects(Some(&redactor));
                    Ok((
                        generation,
                        objects,
                        repocache_cli::table::header_line(&view.report(false, None)),
                    ))
                }
                (None, Some(endpoint)) => {
                    let report = endpoint
                        .reports(Some(kind), false)
                        .await?
                        .into_iter()
                        .next()
                        .with_context(|| format!("the endpoint has no {} cache", kind.plural()))?;
                    let header = repocache_cli::table::header_line(&report);
                    Ok((
                        report.generation,
                        report.objects.unwrap_or_default(),
                        header,
                    ))
                }
                (None, None) => bail!("nothing to watch"),
            }
        };
    // Subscribe before the first look, so that no change falls between the two.
    let local_changes = view.as_ref().map(CacheView::changes);
    let (generation, objects, header) = snapshot(&view).await?;
    let mut follower = Follower::new(generation, &objects);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{header}; watching for changes (Ctrl-C to stop)")?;
        out.flush()?;
    }
    match local_changes {
        // A local cache: every change exactly as the cache publishes it (its subscription).
        Some(mut changes) => loop {
            let change = tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                change = changes.next() => change,
            };
            let Some(change) = change else { break };
            let mut out = std::io::stdout().lock();
            repocache_cli::watch::print(&mut out, &change)?;
            out.flush()?;
        },
        // An endpoint: its snapshots, polled at --interval and diffed.
        None => {
            let mut ticker = tokio::time::interval(args.interval);
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = ticker.tick() => {}
                }
                let (generation, objects, _) = snapshot(&view).await?;
                if follower.is_new(generation) {
                    let mut out = std::io::stdout().lock();
                    follower.update(&mut out, generation, &objects)?;
                }
            }
        }
    }
    if let Some(caches) = caches {
        caches.stop().await;
    }
    Ok(EXIT_OK)
}

/// A progress bar on a terminal, plain lines otherwise (both on stderr).
struct DemoProgress {
    bar: Option<indicatif::ProgressBar>,
    reads: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
    phase: std::sync::Mutex<String>,
}

impl DemoProgress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg:32} [{bar:40}] {pos}/{len} reads, {elapsed}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self {
            bar,
            reads: Default::default(),
            total: Default::default(),
            phase: Default::default(),
        }
    }
}

impl Progress for DemoProgress {
    fn phase(&self, name: &str, total: u64) {
        use std::sync::atomic::Ordering;
        self.reads.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        if let Ok(mut phase) = self.phase.lock() {
            *phase = name.to_owned();
        }
        match &self.bar {
            Some(bar) => {
                bar.reset();
                bar.set_length(total);
                bar.set_message(name.to_owned());
            }
            None => eprintln!("{name}: {total} reads to make"),
        }
    }

    fn read(&self) {
        use std::sync::atomic::Ordering;
        let n = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None => {
                let total = self.total.load(Ordering::Relaxed);
                if n.is_multiple_of(25) || n == total {
                    let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
                    eprintln!("{phase}: {n}/{total} reads");
                }
            }
        }
    }

    fn finish(&self, summary: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(summary.to_owned()),
            None => eprintln!("{summary}"),
        }
    }
}

async fn demo_cmd(args: DemoArgs) -> anyhow::Result<i32> {
    if args.packages == 0 {
        bail!("--packages must be at least 1");
    }
    if !(args.qps.is_finite() && args.qps > 0.0) {
        bail!("--qps must be a positive number");
    }
    if args.debug_addr.is_some_and(|a| !a.ip().is_loopback()) && !args.allow_remote {
        bail!("--debug-addr is not a loopback address: add --allow-remote to serve it anyway");
    }
    let token = args.token.clone().filter(|t| !t.is_empty());
    if args.allow_remote && token.is_none() {
        bail!("--allow-remote needs a token: pass --token or set REPOCACHE_TOKEN");
    }
    let config = DemoConfig {
        packages: args.packages,
        depth: args.depth,
        catalogue: args.catalogue,
        qps: args.qps,
        burst: args.burst,
        ..DemoConfig::default()
    };
    let progress = DemoProgress::new();
    let (report, session) = demo::run(config, &progress).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out)?;
        demo::write_report(&mut out, &report)?;
        out.flush()?;
    }
    if let Some(addr) = args.debug_addr {
        let glasskube = |object: &mut serde_json::Value| repocache_cli::redact(object);
        let mut builder = DebugServer::builder()
            .cache(&session.repositories)
            .cache(&session.package_infos)
            .metrics(&session.metrics)
            .bind(addr)
            .allow_remote(args.allow_remote)
            .redact(glasskube);
        if let Some(token) = &token {
            builder = builder.token(token.clone());
        }
        let handle = builder.start().await?;
        let dir = std::env::temp_dir().join(format!("repocache-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let kubeconfig = dir.join("kubeconfig");
        session
            .server
            .write_kubeconfig(&kubeconfig)
            .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
        let mut out = std::io::stdout().lock();
        writeln!(out)?;
        writeln!(out, "Still running until Ctrl-C:")?;
        writeln!(
            out,
            "  debug endpoint  {}  (/debug/caches, /metrics, /healthz, /readyz)",
            handle.url()
        )?;
        writeln!(
            out,
            "  apisim          {}  (kubeconfig: {})",
            session.server.url(),
            kubeconfig.display()
        )?;
        // The token itself is never printed: the user gave it, and knows it.
        let token_hint = if token.is_some() {
            " --token $REPOCACHE_TOKEN"
        } else {
            ""
        };
        writeln!(
            out,
            "Try: repocache dump --endpoint {}{token_hint} -o wide",
            handle.url()
        )?;
        writeln!(
            out,
            "     repocache verify --endpoint {}{token_hint} --kubeconfig {}",
            handle.url(),
            kubeconfig.display()
        )?;
        writeln!(
            out,
            "     repocache watch --kubeconfig {}",
            kubeconfig.display()
        )?;
        out.flush()?;
        drop(out);
        let _ = tokio::signal::ctrl_c().await;
        handle.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    session.stop().await;
    Ok(EXIT_OK)
}

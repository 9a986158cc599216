//! `repocache`: get (dump), verify and watch a repocache cache, and run the newcomer's demo.
#![allow(clippy::print_stdout)]

use std::io::{IsTerminal as _, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use futures::StreamExt;
use repocache::debug::DebugServer;
use repocache_cli::demo::{self, DemoConfig, Progress};
use repocache_cli::kinds::Kind;
use repocache_cli::select::Selection;
use repocache_cli::source::{
    Caches, Cluster, ClusterArgs, Endpoint, WarmStart, connect, connect_lenient,
};
use repocache_cli::table::{FORMATS, Format, write_format};
use repocache_cli::watch::Follower;
use repocache_cli::{EXIT_DRIFT, EXIT_ERROR, EXIT_OK, parse_duration, parse_interval, verify};

/// The allocator: mimalloc. A command that starts a cache warm decodes every stored object into
/// fresh memory at once, and in a fresh process the first touch of those pages is much of that
/// start: mimalloc reserves one large arena and asks the kernel to back it with transparent huge
/// pages (`MADV_HUGEPAGE`), where glibc's malloc takes its memory 4 KiB page by page (about 10,000
/// page faults for 10,000 objects, against a few hundred). docs/BENCHMARKS.md (6f) measures both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AFTER_HELP: &str = "\
Exit codes:
  0  success (verify: the cache and the server agree)
  1  verify found drift between the cache and the server
  2  error: bad flag or kind, unreachable endpoint or cluster, refused token (401), timeout

Kinds (KIND): {kinds};
singular names, kind names (PackageRepository) and kind.group work too; `all` for every kind.
Namespaced kinds default to the kubeconfig context's namespace (-n NS, -A for all).

Credentials: inline passwords, tokens and usernames, URL userinfo and Secret data print as
<redacted> unless --show-secrets; the kubectl last-applied annotation is left out. In -o json/yaml
each one is {redacted: <redacted>}, an object, which the API server refuses where the schema wants a
string: applying such a dump back fails for objects with credentials instead of overwriting them.
With --endpoint, --show-secrets asks the endpoint for them (?secrets=true); an endpoint reveals
them only if its process started it with allow_secrets, otherwise the request fails (403).

Examples:
  repocache demo                                     # the two runs side by side, ~30 s
  repocache get                                      # PackageRepositories, current context
  repocache get pkg -A -l team=data -o wide           # Packages of every namespace
  repocache get packagerepository glasskube -o jsonpath='{.spec.url}'
  repocache get --endpoint http://127.0.0.1:9464 -o name
  repocache verify --endpoint http://127.0.0.1:9464 --kubeconfig ~/.kube/config
  repocache verify --all --for 5m                     # keep a cache 5 minutes, then compare
  repocache watch --all";

/// The command line, with the kinds (from glasskube-api's list) in the after-help.
fn cli_command() -> clap::Command {
    Cli::command().after_help(AFTER_HELP.replace("{kinds}", &Kind::accepted_names()))
}

/// Inspect repocache caches: print what a cache holds, verify it against the API server, watch
/// it change; or run the demo that shows what the cache saves.
#[derive(Parser, Debug)]
#[command(name = "repocache", version)]
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
    /// Print the objects a cache holds, with a line about the cache's state (kubectl get).
    #[command(visible_alias = "dump")]
    Get(DumpArgs),
    /// Compare a cache with a live LIST; print every drift (exit 1 when there is one).
    Verify(VerifyArgs),
    /// Print one line per change the cache sees (added, updated, deleted) until interrupted.
    Watch(WatchArgs),
    /// Run the demo: the same install uncached (client-go's rate limit) and through repocache.
    Demo(DemoArgs),
    /// Serve a Kubernetes-compatible endpoint for local clients (kubectl, client-go, scripts):
    /// GET, LIST and WATCH of the cached kinds from one LIST and one WATCH per kind upstream;
    /// everything else proxied. Prints a kubeconfig pointing at it.
    Relay(RelayArgs),
    /// Print a shell completion script (e.g. `source <(repocache completion bash)`).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page (roff), e.g. `repocache man > repocache.1; man ./repocache.1`.
    Man,
}

/// The shells `completion` writes scripts for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Where the cache is (a process's debug endpoint, or a fresh one built from a cluster) and
/// what to look at in it.
#[derive(Args, Debug)]
struct SourceArgs {
    /// The kind: plural, singular, kind name or short name, optionally with its group
    /// (packages, package, Package, pkg, packages.packages.glasskube.dev); `all` for every
    /// kind. Default: packagerepositories.
    #[arg(value_name = "KIND")]
    kind: Option<String>,
    /// Only the objects of these names.
    #[arg(value_name = "NAME", requires = "kind")]
    names: Vec<String>,
    /// The kind (deprecated: give KIND as the first argument).
    #[arg(
        long = "kind",
        value_name = "KIND",
        hide = true,
        conflicts_with = "kind"
    )]
    kind_flag: Option<String>,
    /// Every Glasskube kind (with --endpoint: every cache the endpoint serves).
    #[arg(long, conflicts_with_all = ["kind", "kind_flag"])]
    all: bool,
    /// The namespace of namespaced kinds (default: the kubeconfig context's namespace; with
    /// --endpoint: every namespace). Cluster-scoped kinds ignore it.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
    /// Label selector, e.g. -l 'app=web,tier!=db' or -l 'env in (prod,qa)'.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    selector: Option<String>,
    /// Field selector: metadata.name and metadata.namespace, e.g. metadata.name=glasskube.
    #[arg(long, value_name = "SELECTOR")]
    field_selector: Option<String>,
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
    /// How long to wait for a fresh cache to sync, as a Go duration (30s, 1m30s, 500ms).
    #[arg(
        long,
        visible_alias = "request-timeout",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_duration
    )]
    timeout: Duration,
    /// Where fresh caches keep their warm-start files, one per server, user, kind and scope
    /// (0600 files in a 0700 directory; inline credentials are not written). Default:
    /// $XDG_CACHE_HOME/repocache, else ~/.cache/repocache.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Keep no warm-start file: every run lists from scratch.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache_dir: bool,
}

impl SourceArgs {
    /// The warm-start directory: --cache-dir, else the platform's (none with --no-cache-dir).
    fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache_dir {
            return None;
        }
        self.cache_dir
            .clone()
            .or_else(repocache_cli::source::default_cache_dir)
    }

    fn cluster(&self) -> ClusterArgs {
        ClusterArgs {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }

    fn kind_text(&self) -> &str {
        self.kind
            .as_deref()
            .or(self.kind_flag.as_deref())
            .unwrap_or("packagerepositories")
    }

    fn is_all(&self) -> bool {
        self.all || self.kind_text().eq_ignore_ascii_case("all")
    }

    fn kind(&self) -> anyhow::Result<Kind> {
        Ok(self.kind_text().parse::<Kind>()?)
    }

    /// The kinds asked for; also checks the selectors, so that bad input fails before any
    /// connection.
    fn kinds(&self) -> anyhow::Result<Vec<Kind>> {
        self.selection(None)?;
        if self.is_all() {
            if !self.names.is_empty() {
                bail!("names need one kind: e.g. repocache get packages NAME (not with all/--all)");
            }
            Ok(Kind::all())
        } else {
            Ok(vec![self.kind()?])
        }
    }

    /// The selection; `default_namespace` is the context's (`None` with --endpoint).
    fn selection(&self, default_namespace: Option<&str>) -> anyhow::Result<Selection> {
        let namespace = if self.all_namespaces {
            None
        } else {
            self.namespace
                .clone()
                .or_else(|| default_namespace.map(str::to_owned))
        };
        Selection::new(
            namespace,
            self.selector.clone(),
            self.field_selector.clone(),
            self.names.clone(),
        )
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
    /// Output format: table, wide, json, yaml, name or jsonpath=TEMPLATE (kubectl's syntax,
    /// e.g. -o jsonpath='{.items[*].metadata.name}').
    #[arg(short, long, value_name = "FORMAT", default_value = "table", value_parser = parse_format)]
    output: Format,
    /// Print credentials instead of <redacted> (the output can then overwrite them when applied).
    #[arg(long)]
    show_secrets: bool,
    /// Answer at once from the warm-start file when it is at most this old (a Go duration, e.g.
    /// 1h), even when the API server is unreachable; stderr says how old the answer is. Without
    /// it, the answer waits for the LIST that verifies the file.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_staleness: Option<Duration>,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// When the server keeps no state at the cache's resourceVersion (410), wait this long for
    /// the cache to move on before comparing with the latest LIST instead; there, on drift,
    /// wait this long again and report only drift that persists (0: at once).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    grace: Duration,
    /// Without --endpoint: keep the fresh cache running (watching) this long before comparing,
    /// so that an event it misses shows as drift (a Go duration, e.g. 5m; 0: compare at once).
    #[arg(long = "for", value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    keep: Duration,
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
    #[arg(long, default_value_t = 6)]
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
    /// (e.g. 127.0.0.1:9464) until interrupted, to try get, verify and watch on.
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

/// `repocache relay`.
#[derive(Args, Debug)]
struct RelayArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Where to listen: 127.0.0.1:PORT (port 0: any free port; without --authorize only
    /// loopback addresses) or unix:/path (created with mode 0600).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", value_parser = repocache_cli::relay::parse_listen)]
    listen: repocache_relay::Listen,
    /// A kind to cache (repeatable; default: every Glasskube kind).
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<Kind>,
    /// Check every caller: a bearer token (TokenReview) and each cached read
    /// (SubjectAccessReview); proxied requests carry the caller's own token.
    #[arg(long)]
    authorize: bool,
    /// Write the kubeconfig that points at the relay to FILE (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    write_kubeconfig: Option<PathBuf>,
}

async fn relay_cmd(args: RelayArgs) -> anyhow::Result<i32> {
    use repocache_cli::relay;
    let cluster_args = ClusterArgs {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let cluster = connect(&cluster_args).await?;
    let mut builder = relay::register(
        repocache_relay::Relay::builder(cluster.client.clone()).listen(args.listen.clone()),
        &args.kinds,
    );
    if args.authorize {
        builder = with_authorizer(builder, &args, &cluster).await?;
    }
    let relay = builder.start().await?;
    let context = args.context.as_deref().unwrap_or("(current)");
    eprintln!(
        "{}",
        relay::banner(&relay, &cluster.server, context, args.authorize)
    );
    relay.wait_ready(Duration::from_secs(120)).await?;
    match (
        &args.write_kubeconfig,
        relay.kubeconfig(Some(&cluster.namespace)),
    ) {
        (Some(path), Some(text)) => {
            relay::write_private(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "ready. kubeconfig written to {0}: KUBECONFIG={0} kubectl get packagerepositories -w",
                path.display()
            );
        }
        (None, Some(text)) => {
            println!("{text}");
            let _ = std::io::stdout().flush();
            eprintln!("ready.");
        }
        (Some(_), None) => bail!("a unix socket has no kubeconfig (kubectl cannot dial one)"),
        (None, None) => eprintln!("ready (unix socket: point a client that can dial it there)."),
    }
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(EXIT_OK)
}

async fn with_authorizer(
    builder: repocache_relay::RelayBuilder,
    args: &RelayArgs,
    cluster: &Cluster,
) -> anyhow::Result<repocache_relay::RelayBuilder> {
    use repocache_relay::authorize::{AuthorizeConfig, Authorizer};
    let upstream = repocache_cli::relay::client_without_credentials(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
    )
    .await?;
    let authorizer = Authorizer::new(cluster.client.clone(), AuthorizeConfig::default());
    Ok(builder.authorize(authorizer).upstream(upstream))
}

fn main() -> ExitCode {
    let cli = match cli_command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
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
        Command::Get(args) => get(args).await,
        Command::Verify(args) => verify_cmd(args).await,
        Command::Watch(args) => watch(args).await,
        Command::Demo(args) => demo_cmd(args).await,
        Command::Relay(args) => relay_cmd(args).await,
        Command::Completion { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut cli_command(), "repocache", &mut out);
            out.flush()?;
            Ok(EXIT_OK)
        }
        Command::Man => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cli_command()).render(&mut out)?;
            out.flush()?;
            Ok(EXIT_OK)
        }
    }
}

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse::<Format>().map_err(|e| {
        if e.contains(FORMATS) {
            e
        } else {
            format!("{e} (valid: {FORMATS})")
        }
    })
}

async fn get(args: DumpArgs) -> anyhow::Result<i32> {
    let kinds = args.source.kinds()?;
    // The caches started here (not an endpoint's): stopped after the answer is printed.
    let mut started = None;
    let (mut reports, selection) = match args.source.endpoint()? {
        Some(endpoint) => {
            let selection = args.source.selection(None)?;
            let kind = (!args.source.is_all()).then_some(kinds[0]);
            (endpoint.reports(kind, args.show_secrets).await?, selection)
        }
        None => {
            let (cluster, selection, caches) =
                cluster_caches(&args.source, &kinds, args.max_staleness).await?;
            // Only the selected objects are serialized and redacted (`get NAME` of 10,000).
            let reports = caches.selected_reports(args.show_secrets, &selection);
            started = Some((cluster, caches));
            (reports, selection)
        }
    };
    selection.filter(&mut reports);
    let missing = match kinds.as_slice() {
        [kind] => selection.missing(*kind, &reports),
        _ => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    let single = selection.names.len() == 1 && missing.is_empty();
    // Nothing found of the names asked for: only the NotFound lines, as kubectl.
    let nothing_found = !selection.names.is_empty() && missing.len() == selection.names.len();
    if !nothing_found {
        write_format(&mut out, &reports, &args.output, single)?;
    }
    out.flush()?;
    drop(out);
    for line in &missing {
        eprintln!("error: {line}");
    }
    if let Some((cluster, caches)) = started {
        // After the answer: the probe may still be running (a warm answer does not wait for
        // it), and the note says whether the server answered it.
        let unreachable = cluster.unreachable().await;
        for (kind, age) in &caches.warm {
            eprintln!(
                "note: {} answered from the warm-start cache file, {} old, not verified{}",
                kind.plural(),
                repocache_cli::human_duration(*age),
                if unreachable.is_some() {
                    " (the API server is unreachable)"
                } else {
                    ""
                }
            );
        }
        if unreachable.is_none() {
            // Verified after the answer is printed (a warm answer does not wait for its LIST),
            // so that the next run's file is current.
            caches
                .verify_warm(&cluster.server, args.source.timeout)
                .await;
        }
        caches.stop().await;
    }
    Ok(if missing.is_empty() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

async fn verify_cmd(args: VerifyArgs) -> anyhow::Result<i32> {
    let kinds = args.source.kinds()?;
    let endpoint = args.source.endpoint()?;
    let (cluster, selection, caches) = match endpoint {
        Some(_) => {
            let cluster = connect(&args.source.cluster()).await?;
            (cluster, args.source.selection(None)?, None)
        }
        None => {
            let (cluster, selection, caches) = cluster_caches(&args.source, &kinds, None).await?;
            (cluster, selection, Some(caches))
        }
    };
    let client = cluster.client.clone();
    if caches.is_some() && !args.keep.is_zero() {
        // Keep the cache running (watching) for a while, so that a missed event shows.
        let spinner = Spinner::new(&format!(
            "keeping the cache for {} before comparing",
            repocache_cli::human_duration(args.keep)
        ));
        tokio::time::sleep(args.keep).await;
        spinner.finish();
    }
    let mut out = std::io::stdout().lock();
    let mut kinds = kinds;
    if let Some(endpoint) = &endpoint
        && args.source.is_all()
    {
        let held: Vec<String> = endpoint
            .reports(None, false)
            .await?
            .into_iter()
            .map(|r| r.kind)
            .collect();
        for kind in kinds.iter().filter(|k| !held.iter().any(|h| h == k.name())) {
            writeln!(
                out,
                "# skipped {}: the endpoint at {} holds no {} cache",
                kind.plural(),
                endpoint.url(),
                kind.name()
            )?;
        }
        kinds.retain(|k| held.iter().any(|h| h == k.name()));
        if kinds.is_empty() {
            bail!(
                "the endpoint at {} holds no Glasskube cache: nothing to verify",
                endpoint.url()
            );
        }
    }
    let mut in_sync = true;
    for kind in kinds {
        let look = async || -> anyhow::Result<repocache::debug::CacheReport> {
            match (&endpoint, &caches) {
                (Some(endpoint), _) => endpoint
                    .reports(Some(kind), false)
                    .await?
                    .into_iter()
                    .next()
                    .with_context(|| format!("the endpoint has no {} cache", kind.plural())),
                (None, Some(caches)) => caches
                    .reports(false)
                    .into_iter()
                    .find(|r| r.kind == kind.name())
                    .with_context(|| format!("no {} cache", kind.plural())),
                (None, None) => bail!("no cache to verify"),
            }
        };
        // First at matching resourceVersions: a LIST of the state at the resourceVersion the
        // cache's snapshot is known to reflect (its own, or a later one a bookmark proved), so
        // that lag cannot pass for drift nor hide it. When the server keeps no such state (410:
        // compacted; apisim keeps only the current one), wait up to --grace for the cache to
        // move on (an event or a bookmark) and try again.
        let deadline = tokio::time::Instant::now() + args.grace;
        let mut exact = None;
        let mut report = consistent_look(&look).await?;
        while let Some(cache_rv) = known_version(&report) {
            if let Some(live) =
                verify::live_list(&client, kind, &selection, Some(&cache_rv)).await?
            {
                exact = Some(live);
                break;
            }
            let Some(moved) = moved_on(&look, &cache_rv, deadline).await? else {
                break;
            };
            report = moved;
        }
        let compared = match &exact {
            Some(_) => verify::Compared::AtSameVersion,
            None => verify::Compared::Latest,
        };
        if exact.is_none() {
            writeln!(
                out,
                "# the server keeps no state at the {} cache's resourceVersion {}: comparing with the latest LIST",
                kind.plural(),
                known_version(&report).as_deref().unwrap_or("-")
            )?;
        }
        let mut attempt = 0;
        loop {
            selection.filter(std::slice::from_mut(&mut report));
            let (live, live_rv) = match exact.take() {
                Some(live) => live,
                None => verify::live_list(&client, kind, &selection, None)
                    .await?
                    .context("the server refused the latest LIST")?,
            };
            let objects = verify::objects_of(&report)?;
            let drifts = verify::compare(objects, &live);
            if !drifts.is_empty()
                && compared == verify::Compared::Latest
                && attempt == 0
                && !args.grace.is_zero()
            {
                attempt += 1;
                tokio::time::sleep(args.grace).await;
                report = look().await?;
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
                compared,
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

/// The resourceVersion a report's snapshot is known to reflect (its own, or a later one a
/// bookmark proved); `None` when it has none that a LIST could be asked at.
fn known_version(report: &repocache::debug::CacheReport) -> Option<String> {
    report
        .version
        .filter(|v| *v > 0)
        .map(|v| v.to_string())
        .or_else(|| report.resource_version.clone())
        .filter(|rv| !rv.is_empty() && rv != "0")
}

/// A report whose objects and resourceVersion are of the same snapshot: `look` until two
/// looks in a row see the same generation (a report reads its figures before its objects).
async fn consistent_look(
    look: &impl AsyncFn() -> anyhow::Result<repocache::debug::CacheReport>,
) -> anyhow::Result<repocache::debug::CacheReport> {
    let mut report = look().await?;
    for _ in 0..20 {
        let again = look().await?;
        if again.generation == report.generation {
            return Ok(report);
        }
        report = again;
    }
    Ok(report)
}

/// Waits (until `deadline`) for the cache to leave resourceVersion `rv`; its new consistent
/// report, or `None` when it stayed.
async fn moved_on(
    look: &impl AsyncFn() -> anyhow::Result<repocache::debug::CacheReport>,
    rv: &str,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Option<repocache::debug::CacheReport>> {
    loop {
        let report = consistent_look(look).await?;
        if known_version(&report).as_deref() != Some(rv) {
            return Ok(Some(report));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects to the cluster `source` names, selects with the context's namespace as the default,
/// and starts caches of `kinds` (waiting for their first sync): what `get`, `watch` and
/// `verify` do without --endpoint.
///
/// With `max_staleness`, a cache whose warm-start file is at most that old answers from it
/// without waiting, and an unreachable server is no error for such caches.
async fn cluster_caches(
    source: &SourceArgs,
    kinds: &[Kind],
    max_staleness: Option<Duration>,
) -> anyhow::Result<(Cluster, Selection, Caches)> {
    let cluster = connect_lenient(&source.cluster(), max_staleness.is_some()).await?;
    let selection = source.selection(Some(&cluster.namespace))?;
    let warm = WarmStart::new(source.cache_dir(), &cluster, max_staleness);
    let caches = start_caches(&cluster, kinds, &selection, source.timeout, &warm).await?;
    Ok((cluster, selection, caches))
}

/// Starts caches and waits for their first sync, with a spinner on a terminal.
async fn start_caches(
    cluster: &Cluster,
    kinds: &[Kind],
    selection: &Selection,
    timeout: Duration,
    warm: &WarmStart,
) -> anyhow::Result<Caches> {
    let spinner = Spinner::new(&format!("syncing from {}", cluster.server));
    let caches = Caches::start(cluster, kinds, selection, timeout, warm).await;
    spinner.finish();
    caches
}

/// A spinner on stderr when it is a terminal (nothing when piped).
struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn new(message: &str) -> Self {
        Self(std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(message.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }))
    }

    fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

/// `watch`'s line for a change: with the kind in front when several kinds are watched.
fn print_change(
    out: &mut dyn Write,
    kind: Option<Kind>,
    change: &repocache::debug::ViewChange,
) -> std::io::Result<()> {
    if let Some(kind) = kind {
        write!(out, "{:<18} ", kind.name())?;
    }
    repocache_cli::watch::print(out, change)
}

/// Whether a change's `key` (`name` or `namespace/name`) is one of `names` (all when empty).
fn key_selected(selection: &Selection, key: &str) -> bool {
    let name = key.rsplit_once('/').map_or(key, |(_, name)| name);
    key.is_empty() || selection.names.is_empty() || selection.names.iter().any(|n| n == name)
}

async fn watch(args: WatchArgs) -> anyhow::Result<i32> {
    let kinds = args.source.kinds()?;
    let several = kinds.len() > 1;
    match args.source.endpoint()? {
        None => watch_cluster(args, kinds, several).await,
        Some(endpoint) => watch_endpoint(args, endpoint, kinds, several).await,
    }
}

/// Follows fresh caches through their subscriptions; stops (exit 2) when the server has been
/// gone for --timeout.
async fn watch_cluster(args: WatchArgs, kinds: Vec<Kind>, several: bool) -> anyhow::Result<i32> {
    let (cluster, selection, caches) = cluster_caches(&args.source, &kinds, None).await?;
    // Subscribe before the first look, so that no change falls between the two.
    let mut changes = futures::stream::select_all(caches.views.iter().map(|(kind, view)| {
        let kind = *kind;
        view.changes().map(move |change| (kind, change))
    }));
    {
        let mut out = std::io::stdout().lock();
        for (_, view) in &caches.views {
            let header = repocache_cli::table::header_line(&view.report(false, None));
            writeln!(out, "{header}; watching for changes (Ctrl-C to stop)")?;
        }
        out.flush()?;
    }
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut unhealthy_since: Option<tokio::time::Instant> = None;
    let code = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break EXIT_OK,
            change = changes.next() => {
                let Some((kind, change)) = change else {
                    eprintln!("error: the caches stopped; rerun repocache watch");
                    break EXIT_ERROR;
                };
                if !key_selected(&selection, &change.key) {
                    continue;
                }
                let mut out = std::io::stdout().lock();
                print_change(&mut out, several.then_some(kind), &change)?;
                out.flush()?;
            }
            _ = check.tick() => {
                // The watch retries quietly while the cache is fresh; ask the server itself.
                let probe = http::Request::get("/version")
                    .body(kube::client::Body::from(Vec::new()))
                    .context("cannot build the request")?;
                let reply = tokio::time::timeout(Duration::from_secs(5), cluster.client.send(probe)).await;
                let problem = match reply {
                    Ok(Ok(_)) => None,
                    Ok(Err(err)) => Some(match repocache_cli::source::io_kind(&err) {
                        Some(std::io::ErrorKind::ConnectionRefused) => "connections refused".to_owned(),
                        _ => repocache_cli::source::root_cause(&err),
                    }),
                    Err(_) => Some("no answer".to_owned()),
                };
                match problem {
                    None => unhealthy_since = None,
                    Some(problem) => {
                        let since = *unhealthy_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() >= args.source.timeout {
                            eprintln!(
                                "error: lost the server {} ({problem} for {}); stopped watching - rerun repocache watch when it is back",
                                cluster.server,
                                repocache_cli::human_duration(args.source.timeout),
                            );
                            break EXIT_ERROR;
                        }
                    }
                }
            }
        }
    };
    drop(changes);
    caches.stop().await;
    Ok(code)
}

/// Polls an endpoint at --interval and prints the differences between its snapshots; a failed
/// poll (the process went away) ends the command with that error (exit 2).
async fn watch_endpoint(
    args: WatchArgs,
    endpoint: Endpoint,
    kinds: Vec<Kind>,
    several: bool,
) -> anyhow::Result<i32> {
    let selection = args.source.selection(None)?;
    let snapshot = async || -> anyhow::Result<Vec<(Kind, repocache::debug::CacheReport)>> {
        let reports = if several {
            endpoint.reports(None, false).await?
        } else {
            endpoint.reports(Some(kinds[0]), false).await?
        };
        let mut found = Vec::new();
        for mut report in reports {
            let Ok(kind) = report.kind.parse::<Kind>() else {
                continue;
            };
            if kinds.contains(&kind) {
                selection.filter(std::slice::from_mut(&mut report));
                found.push((kind, report));
            }
        }
        if found.is_empty() {
            bail!(
                "the endpoint at {} holds no {} cache",
                endpoint.url(),
                kinds
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
        }
        Ok(found)
    };
    let mut followers: Vec<(Kind, Follower)> = Vec::new();
    {
        let mut out = std::io::stdout().lock();
        for (kind, report) in snapshot().await? {
            let header = repocache_cli::table::header_line(&report);
            writeln!(out, "{header}; watching for changes (Ctrl-C to stop)")?;
            let objects = report.objects.unwrap_or_default();
            followers.push((kind, Follower::new(report.generation, &objects)));
        }
        out.flush()?;
    }
    let mut ticker = tokio::time::interval(args.interval);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {}
        }
        let reports = snapshot()
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}; stopped watching"))?;
        for (kind, report) in reports {
            let Some((_, follower)) = followers.iter_mut().find(|(k, _)| *k == kind) else {
                continue;
            };
            if !follower.is_new(report.generation) {
                continue;
            }
            let objects = report.objects.unwrap_or_default();
            let mut buffer = Vec::new();
            follower.update(&mut buffer, report.generation, &objects)?;
            let mut out = std::io::stdout().lock();
            for line in String::from_utf8_lossy(&buffer).lines() {
                if several {
                    write!(out, "{:<18} ", kind.name())?;
                }
                writeln!(out, "{line}")?;
            }
            out.flush()?;
        }
    }
    Ok(EXIT_OK)
}

/// `--debug-addr` cannot be bound: one line saying what to do, the OS error said once.
fn bind_error(addr: SocketAddr, err: &std::io::Error) -> anyhow::Error {
    match err.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "{addr} is already in use by another process: pick another --debug-addr (e.g. 127.0.0.1:0 for any free port)"
        ),
        std::io::ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "{addr} is not an address of this machine: pick another --debug-addr (e.g. 127.0.0.1:9464)"
        ),
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "not allowed to listen on {addr}: pick a port above 1023 with --debug-addr"
        ),
        _ => anyhow::anyhow!("cannot listen on {addr} ({err}): pick another --debug-addr"),
    }
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
    // Check the address before the ~30 s of runs, not after them.
    if let Some(addr) = args.debug_addr {
        std::net::TcpListener::bind(addr).map_err(|e| bind_error(addr, &e))?;
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
        let handle = builder.start().await.map_err(|e| match &e {
            repocache::debug::DebugError::Bind { addr, source } => bind_error(*addr, source),
            other => anyhow::anyhow!("{other}"),
        })?;
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
            "Try: repocache get --endpoint {}{token_hint} -o wide",
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

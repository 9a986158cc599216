//! [`Operator`]: the caches, the two controllers on top of them, and their orderly shutdown;
//! [`run`] drives one until a shutdown signal.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use glasskube_api::{ClusterPackage, Package};
use kube::Client;
use kube::runtime::controller::Error as ControllerError;
use kube::runtime::controller::{self, Controller};
use repocache::controller::{changed_objects, store_bridge};
use repocache::{CacheSet, Metrics, glasskube};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::context::Context;
use crate::error::Error;
use crate::reconcile::{ManagedPackage, RepositoryMapper, error_policy, reconcile};

/// A running operator: three caches (PackageRepository, Package, ClusterPackage) on one client,
/// and a controller for Packages and one for ClusterPackages, both driven from the caches.
#[derive(Debug)]
pub struct Operator {
    ctx: Arc<Context>,
    caches: CacheSet,
    stop: CancellationToken,
    controllers: Vec<(&'static str, JoinHandle<()>)>,
}

impl Operator {
    /// Starts the caches, waits for their first sync (at most
    /// [`Config::ready_timeout`]), then starts both controllers.
    ///
    /// The controllers start only once every cache is ready: a reconcile that ran earlier
    /// would see no repositories and write `RepositoryNotFound` everywhere.
    pub async fn start(client: Client, config: Config) -> Result<Self, Error> {
        let mut builder = CacheSet::builder(client.clone()).ttl(config.cache_ttl);
        let repos = builder.add(glasskube::package_repositories());
        let packages = builder.add(glasskube::packages());
        let cluster_packages = builder.add(glasskube::cluster_packages());
        let caches = builder.start();
        if let Err(error) = caches.wait_ready(config.ready_timeout).await {
            caches.shutdown().await;
            return Err(Error::NotReady(error));
        }
        info!(
            repositories = repos.snapshot().len(),
            packages = packages.snapshot().len(),
            cluster_packages = cluster_packages.snapshot().len(),
            "caches ready; starting the controllers"
        );
        let ctx = Arc::new(Context::new(
            client,
            config,
            repos,
            packages,
            cluster_packages,
        ));
        let stop = CancellationToken::new();
        let controllers = vec![
            (
                "Package",
                tokio::spawn(controller::<Package>(ctx.clone(), stop.clone())),
            ),
            (
                "ClusterPackage",
                tokio::spawn(controller::<ClusterPackage>(ctx.clone(), stop.clone())),
            ),
        ];
        Ok(Self {
            ctx,
            caches,
            stop,
            controllers,
        })
    }

    /// What the reconcilers share and record (caches, reconcile counts, mapper emissions).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The caches' Prometheus metrics (render them with [`Metrics::render`]).
    pub fn metrics(&self) -> &Metrics {
        self.caches.metrics()
    }

    /// Whether a controller has ended (it only ends on shutdown, or when its cache stopped).
    pub fn any_controller_finished(&self) -> Option<&'static str> {
        self.controllers
            .iter()
            .find(|(_, handle)| handle.is_finished())
            .map(|(kind, _)| *kind)
    }

    /// Stops both controllers (gracefully: running reconciles finish, nothing new starts),
    /// waits for them, then stops the caches.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for (kind, handle) in self.controllers {
            if let Err(error) = handle.await {
                warn!(controller = kind, %error, "controller task failed");
            }
        }
        self.caches.shutdown().await;
        let records = self.ctx.records();
        info!(
            packages = records.len(),
            reconciles = records.values().map(|r| r.reconciles).sum::<u64>(),
            writes = records.values().map(|r| r.writes).sum::<u64>(),
            "operator stopped"
        );
    }

    /// Waits until a controller ends by itself, and says which.
    async fn controller_ended(&mut self) -> &'static str {
        let handles = self.controllers.iter_mut().map(|(kind, handle)| {
            let kind = *kind;
            Box::pin(async move {
                let _ = handle.await;
                kind
            })
        });
        let (kind, _, _) = futures::future::select_all(handles).await;
        kind
    }
}

/// Runs the operator on `client` until `shutdown` resolves, then stops the controllers and the
/// caches and returns. Fails when the caches do not become ready, or when a controller ends
/// before `shutdown` (its cache stopped).
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut operator = Operator::start(client, config).await?;
    let early = tokio::select! {
        () = shutdown => None,
        kind = operator.controller_ended() => Some(kind),
    };
    operator.shutdown().await;
    match early {
        Some(kind) => Err(Error::ControllerStopped(kind)),
        None => Ok(()),
    }
}

/// One controller for kind `P`: its primary objects come from `P`'s cache through a bridged
/// store, and PackageRepository changes requeue the packages that use the repository.
async fn controller<P: ManagedPackage>(ctx: Arc<Context>, stop: CancellationToken) {
    let (store, triggers) = store_bridge(P::cache(&ctx));
    // The mapper's memory of default repositories is seeded before the trigger stream
    // subscribes; every change after the subscription reaches the mapper.
    let mapper = RepositoryMapper::<P>::new(ctx.clone());
    let repository_changes = changed_objects(&ctx.repos);
    let config = controller::Config::default()
        .concurrency(ctx.config.concurrency)
        .debounce(ctx.config.debounce);
    Controller::for_stream(triggers, store)
        .with_config(config)
        .watches_stream(repository_changes, move |repo| mapper.map(repo))
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile::<P>, error_policy::<P>, ctx)
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(controller = P::KIND.as_str(), %object, "reconciled"),
                // A deleted package's last trigger: nothing left to reconcile.
                Err(ControllerError::ObjectNotFound(object)) => {
                    debug!(controller = P::KIND.as_str(), %object, "gone before its reconcile")
                }
                // The reconciler's own errors are logged by the error policy.
                Err(ControllerError::ReconcilerFailed(..)) => {}
                Err(error) => warn!(controller = P::KIND.as_str(), %error, "controller error"),
            }
            std::future::ready(())
        })
        .await;
    info!(controller = P::KIND.as_str(), "controller stopped");
}

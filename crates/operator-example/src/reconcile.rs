//! The reconciler both controllers run, the error policy, and the repository mapper that turns
//! a PackageRepository change into the packages to requeue.
//!
//! A reconcile reads only caches: the package comes from the controller's store (kept in step
//! with the package cache by [`repocache::controller::store_bridge`]), the repository from the
//! PackageRepository cache. The only request it makes is the status patch, and only when the
//! condition changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;

use glasskube_api::condition::Time;
use glasskube_api::{ClusterPackage, HasConditions, Package, PackageRepository};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use repocache::Cache;
use repocache::glasskube::{BY_REPOSITORY, DEFAULT_REPOSITORY};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::condition::{CONDITION_TYPE, desired_condition};
use crate::context::{Context, MapperEmission, Outcome, PackageKind, PackageRef};
use crate::error::Error;

/// What the reconciler needs of a package kind: Package and ClusterPackage.
pub trait ManagedPackage:
    Resource<DynamicType = ()>
    + HasConditions
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Which kind this is.
    const KIND: PackageKind;

    /// `spec.packageInfo.repositoryName`; `None` when absent or empty (the default repository).
    fn repository(&self) -> Option<&str>;

    /// This kind's cache in the context.
    fn cache(ctx: &Context) -> &Cache<Self>;

    /// The API to patch this object's status through.
    fn api_for(client: Client, obj: &Self) -> Result<Api<Self>, Error>;
}

impl ManagedPackage for Package {
    const KIND: PackageKind = PackageKind::Package;

    fn repository(&self) -> Option<&str> {
        self.repository_name()
    }

    fn cache(ctx: &Context) -> &Cache<Self> {
        &ctx.packages
    }

    fn api_for(client: Client, obj: &Self) -> Result<Api<Self>, Error> {
        let namespace = obj
            .metadata
            .namespace
            .as_deref()
            .ok_or(Error::MissingMetadata {
                kind: "Package",
                field: "metadata.namespace",
            })?;
        Ok(Api::namespaced(client, namespace))
    }
}

impl ManagedPackage for ClusterPackage {
    const KIND: PackageKind = PackageKind::ClusterPackage;

    fn repository(&self) -> Option<&str> {
        self.repository_name()
    }

    fn cache(ctx: &Context) -> &Cache<Self> {
        &ctx.cluster_packages
    }

    fn api_for(client: Client, _: &Self) -> Result<Api<Self>, Error> {
        Ok(Api::all(client))
    }
}

/// Reconciles one package: resolves its repository through the cache, computes the
/// `RepositoryReady` condition, and patches the status when the condition differs.
pub async fn reconcile<P: ManagedPackage>(
    package: Arc<P>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let target = PackageRef::of(P::KIND, package.as_ref());
    ctx.reconcile_started(&target);
    let result = write_condition(package.as_ref(), &target, &ctx).await;
    let outcome = match &result {
        Ok(outcome) => *outcome,
        Err(_) => Outcome::Failed,
    };
    ctx.reconcile_ended(&target, outcome);
    result?;
    Ok(match ctx.config.requeue {
        Some(every) => Action::requeue(every),
        None => Action::await_change(),
    })
}

async fn write_condition<P: ManagedPackage>(
    package: &P,
    target: &PackageRef,
    ctx: &Context,
) -> Result<Outcome, Error> {
    if target.name.is_empty() {
        return Err(Error::MissingMetadata {
            kind: P::KIND.as_str(),
            field: "metadata.name",
        });
    }
    // One snapshot for the whole decision: the default repository and the named one are read
    // from the same consistent view.
    let desired = desired_condition(ctx.repos.snapshot().as_ref(), package.repository())
        .map_err(Error::Lookup)?;
    if desired.is_current(package.condition(CONDITION_TYPE)) {
        debug!(package = %target, reason = desired.reason, "condition is current");
        return Ok(Outcome::Unchanged);
    }
    let conditions = desired.merge_into(package.conditions(), Time(Timestamp::now()));
    // The resourceVersion makes the patch conditional: the conditions list is replaced whole,
    // so a concurrent writer's condition must not be lost.
    let patch = json!({
        "metadata": {"resourceVersion": package.meta().resource_version},
        "status": {"conditions": conditions},
    });
    let api = P::api_for(ctx.client.clone(), package)?;
    match api
        .patch_status(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            info!(
                package = %target,
                status = desired.status_str(),
                reason = desired.reason,
                detail = %desired.message,
                "condition written"
            );
            Ok(Outcome::Written)
        }
        Err(kube::Error::Api(status)) if status.is_conflict() => {
            debug!(package = %target, "stale package version; the watch brings the newer one");
            Ok(Outcome::Conflict)
        }
        Err(source) => Err(Error::Patch {
            kind: P::KIND.as_str(),
            key: target.key(),
            source,
        }),
    }
}

/// Retries a failed reconcile after [`Config::error_requeue`](crate::Config::error_requeue).
pub fn error_policy<P: ManagedPackage>(
    package: Arc<P>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    warn!(package = %PackageRef::of(P::KIND, package.as_ref()), %error, "reconcile failed");
    Action::requeue(ctx.config.error_requeue)
}

/// A controller's `watches_stream` mapper: a changed PackageRepository requeues the packages
/// whose [`BY_REPOSITORY`] index value is its name, and — when it is or was the default
/// repository — the packages that name no repository.
///
/// `repocache::controller::changed_objects` yields only the new version of a changed
/// repository, so "was default" comes from the mapper's own memory of which repositories were
/// marked default, seeded from the cache before the trigger stream subscribes.
pub struct RepositoryMapper<P> {
    ctx: Arc<Context>,
    defaults: Mutex<BTreeSet<String>>,
    _kind: std::marker::PhantomData<fn() -> P>,
}

impl<P: ManagedPackage> RepositoryMapper<P> {
    /// A mapper whose memory of default repositories is the cache's current view.
    pub fn new(ctx: Arc<Context>) -> Self {
        let defaults = ctx
            .repos
            .snapshot()
            .iter()
            .filter(|r| r.is_default())
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        Self {
            ctx,
            defaults: Mutex::new(defaults),
            _kind: std::marker::PhantomData,
        }
    }

    /// The packages to requeue for this change of `repo` (recorded in the context).
    pub fn map(&self, repo: PackageRepository) -> Vec<ObjectRef<P>> {
        let name = repo.metadata.name.clone().unwrap_or_default();
        // A deleted repository is gone from the cache by the time its change is mapped.
        let exists = self.ctx.repos.get(&name).is_some();
        let is_default = repo.is_default() && exists;
        let was_default = {
            let mut defaults = self.defaults.lock();
            if is_default {
                !defaults.insert(name.clone())
            } else {
                defaults.remove(&name)
            }
        };
        let cache = P::cache(&self.ctx);
        let mut values = vec![name.as_str()];
        if repo.is_default() || was_default {
            values.push(DEFAULT_REPOSITORY);
        }
        let mut targets = BTreeMap::new();
        for value in values {
            match cache.by_index(BY_REPOSITORY, value) {
                Ok(users) => {
                    for user in users {
                        targets.insert(
                            PackageRef::of(P::KIND, user.as_ref()),
                            ObjectRef::from_obj(user.as_ref()),
                        );
                    }
                }
                Err(error) => warn!(%error, repository = %name, "cannot map the repository change"),
            }
        }
        debug!(
            controller = P::KIND.as_str(),
            repository = %name,
            is_default,
            was_default,
            requeued = targets.len(),
            "repository changed"
        );
        self.ctx.mapped(MapperEmission {
            controller: P::KIND,
            repository: name,
            resource_version: repo.metadata.resource_version.clone(),
            is_default,
            was_default,
            requeued: targets.keys().cloned().collect(),
        });
        targets.into_values().collect()
    }
}

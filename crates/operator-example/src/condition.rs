//! The status condition the operator writes on every package: `RepositoryReady`, computed from
//! the repository the package uses (as the PackageRepository cache sees it), and how it is merged
//! into the package's existing conditions.

use glasskube_api::condition::{Condition, Time, condition_status};
use glasskube_api::{DEFAULT_REPOSITORY_ANNOTATION, PackageRepository};
use repocache::glasskube::RepositoryLookup;

/// The condition type the operator owns on Packages and ClusterPackages.
pub const CONDITION_TYPE: &str = "RepositoryReady";

/// The reasons of a [`CONDITION_TYPE`] condition.
pub mod reason {
    /// The repository exists and its `Ready` condition is `True` (status `True`).
    pub const READY: &str = "RepositoryReady";
    /// The repository exists but is not ready: `Ready` is `False`, `Unknown` or absent.
    pub const NOT_READY: &str = "RepositoryNotReady";
    /// The package names a repository that does not exist.
    pub const NOT_FOUND: &str = "RepositoryNotFound";
    /// The package names no repository and none is marked default.
    pub const NO_DEFAULT: &str = "NoDefaultRepository";
    /// The package names no repository and several are marked default.
    pub const SEVERAL_DEFAULTS: &str = "SeveralDefaultRepositories";
}

/// The condition a package should carry, without its timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCondition {
    /// `True` only for [`reason::READY`].
    pub status: bool,
    /// One of [`reason`]'s constants.
    pub reason: &'static str,
    /// Names the repository and its URL (or says why there is none).
    pub message: String,
}

impl DesiredCondition {
    /// `"True"` or `"False"`.
    pub fn status_str(&self) -> &'static str {
        if self.status { "True" } else { "False" }
    }

    /// Whether `existing` already says what this condition says (type, status, reason and
    /// message): then the operator writes nothing.
    pub fn is_current(&self, existing: Option<&Condition>) -> bool {
        existing.is_some_and(|c| {
            c.type_ == CONDITION_TYPE
                && c.status == self.status_str()
                && c.reason == self.reason
                && c.message == self.message
        })
    }

    /// `existing` with this condition in place of the one of type [`CONDITION_TYPE`] (or
    /// appended). The previous `lastTransitionTime` is kept when the status did not change;
    /// otherwise it is `now`. Other conditions are kept as they are.
    pub fn merge_into(&self, existing: &[Condition], now: Time) -> Vec<Condition> {
        let mut conditions = existing.to_vec();
        let previous = conditions.iter().position(|c| c.type_ == CONDITION_TYPE);
        let last_transition_time = match previous.map(|i| &conditions[i]) {
            Some(c) if c.status == self.status_str() => c.last_transition_time.clone(),
            _ => now,
        };
        let condition = Condition {
            type_: CONDITION_TYPE.to_owned(),
            status: self.status_str().to_owned(),
            reason: self.reason.to_owned(),
            message: self.message.clone(),
            last_transition_time,
            observed_generation: None,
        };
        match previous {
            Some(i) => conditions[i] = condition,
            None => conditions.push(condition),
        }
        conditions
    }
}

/// The condition for a package that names `repository_name` (`None` or empty: the default
/// repository), computed from `repos` (a snapshot or a cache of PackageRepositories).
///
/// Several default repositories are not an error of the package's reconcile: the typed
/// [`repocache::glasskube::Error::SeveralDefaults`] becomes a `False` condition with reason
/// [`reason::SEVERAL_DEFAULTS`]. Any other lookup error is returned.
pub fn desired_condition(
    repos: &impl RepositoryLookup,
    repository_name: Option<&str>,
) -> Result<DesiredCondition, repocache::glasskube::Error> {
    let named = repository_name.filter(|n| !n.is_empty());
    let repo = match repos.resolve(named) {
        Ok(repo) => repo,
        Err(repocache::glasskube::Error::SeveralDefaults { names }) => {
            return Ok(DesiredCondition {
                status: false,
                reason: reason::SEVERAL_DEFAULTS,
                message: format!(
                    "several repositories are marked default: {}",
                    names.join(", ")
                ),
            });
        }
        Err(e) => return Err(e),
    };
    Ok(match (repo, named) {
        (Some(repo), _) => for_repository(&repo, named.is_none()),
        (None, Some(name)) => DesiredCondition {
            status: false,
            reason: reason::NOT_FOUND,
            message: format!("repository {name} not found"),
        },
        (None, None) => DesiredCondition {
            status: false,
            reason: reason::NO_DEFAULT,
            message: format!(
                "no repository is marked default (annotation {DEFAULT_REPOSITORY_ANNOTATION}: \"true\")"
            ),
        },
    })
}

fn for_repository(repo: &PackageRepository, as_default: bool) -> DesiredCondition {
    let which = if as_default {
        "default repository"
    } else {
        "repository"
    };
    let name = repo.metadata.name.as_deref().unwrap_or_default();
    let url = &repo.spec.url;
    match repo.ready_condition() {
        Some(ready) if condition_status(ready) == Some(true) => DesiredCondition {
            status: true,
            reason: reason::READY,
            message: format!("{which} {name} ({url}) is ready"),
        },
        Some(ready) => DesiredCondition {
            status: false,
            reason: reason::NOT_READY,
            message: format!(
                "{which} {name} ({url}) is not ready: Ready={} {}: {}",
                ready.status, ready.reason, ready.message
            ),
        },
        None => DesiredCondition {
            status: false,
            reason: reason::NOT_READY,
            message: format!("{which} {name} ({url}) has not reported readiness yet"),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use glasskube_api::condition::new_condition;
    use k8s_openapi::jiff::Timestamp;

    fn time(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn desired(status: bool) -> DesiredCondition {
        DesiredCondition {
            status,
            reason: if status {
                reason::READY
            } else {
                reason::NOT_READY
            },
            message: "m".into(),
        }
    }

    #[test]
    fn merge_keeps_transition_time_when_status_is_unchanged() {
        let other = new_condition("Ready", true, "Installed", "ok", time(1));
        let ours = new_condition(CONDITION_TYPE, true, reason::READY, "old", time(2));
        let merged = desired(true).merge_into(&[other.clone(), ours], time(3));
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], other);
        assert_eq!(merged[1].message, "m");
        assert_eq!(merged[1].last_transition_time, time(2));

        let merged = desired(false).merge_into(&merged, time(4));
        assert_eq!(merged[1].status, "False");
        assert_eq!(merged[1].last_transition_time, time(4));
        assert_eq!(
            desired(true).merge_into(&[], time(5))[0].last_transition_time,
            time(5)
        );
    }

    #[test]
    fn current_compares_status_reason_and_message() {
        let c = new_condition(CONDITION_TYPE, true, reason::READY, "m", time(1));
        assert!(desired(true).is_current(Some(&c)));
        assert!(!desired(false).is_current(Some(&c)));
        let mut other_message = c.clone();
        other_message.message = "n".into();
        assert!(!desired(true).is_current(Some(&other_message)));
        assert!(!desired(true).is_current(None));
    }
}

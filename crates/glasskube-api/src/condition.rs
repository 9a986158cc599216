//! Status conditions shared by all Glasskube kinds.
//!
//! Upstream uses the standard `metav1.Condition`, so this module re-exports k8s-openapi's
//! [`Condition`] and adds lookup helpers ([`find_condition`], [`condition_status`],
//! [`HasConditions`]) that work the same for every kind.

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type the Glasskube operator writes on every kind: `Ready`.
pub const READY: &str = "Ready";
/// Reason of a `Ready=True` condition after a successful repository / manifest sync.
pub const REASON_SYNC_COMPLETED: &str = "SyncCompleted";
/// Reason of a `Ready=False` condition after a failed repository / manifest sync.
pub const REASON_SYNC_FAILED: &str = "SyncFailed";

/// Returns the condition of type `type_` in `conditions`, if any (first match).
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Interprets a condition's `status`: `"True"` → `Some(true)`, `"False"` → `Some(false)`,
/// anything else (`"Unknown"`, empty, garbage) → `None`.
pub fn condition_status(condition: &Condition) -> Option<bool> {
    match condition.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

/// Builds a condition with `status` `"True"`/`"False"` (e.g. for seeding a simulated server).
pub fn new_condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    last_transition_time: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time,
        observed_generation: None,
    }
}

/// Read access to an object's `status.conditions`, implemented by all four Glasskube kinds.
pub trait HasConditions {
    /// The object's status conditions (empty when there is no status).
    fn conditions(&self) -> &[Condition];

    /// The condition of type `type_`, if any.
    fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(self.conditions(), type_)
    }

    /// The `Ready` condition, if any.
    fn ready_condition(&self) -> Option<&Condition> {
        self.condition(READY)
    }

    /// `Some(true)` / `Some(false)` from the `Ready` condition; `None` when it is absent or
    /// `Unknown`.
    fn is_ready(&self) -> Option<bool> {
        self.ready_condition().and_then(condition_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: String::new(),
            message: String::new(),
            last_transition_time: Time(Default::default()),
            observed_generation: None,
        }
    }

    #[test]
    fn status_parsing() {
        assert_eq!(condition_status(&cond(READY, "True")), Some(true));
        assert_eq!(condition_status(&cond(READY, "False")), Some(false));
        assert_eq!(condition_status(&cond(READY, "Unknown")), None);
        assert_eq!(condition_status(&cond(READY, "true")), None);
    }

    #[test]
    fn find_first_of_type() {
        let cs = vec![
            cond("Other", "True"),
            cond(READY, "False"),
            cond(READY, "True"),
        ];
        assert_eq!(
            find_condition(&cs, READY).map(|c| c.status.as_str()),
            Some("False")
        );
        assert!(find_condition(&cs, "Missing").is_none());
    }

    #[test]
    fn new_condition_sets_status_string() {
        let c = new_condition(
            READY,
            true,
            REASON_SYNC_COMPLETED,
            "ok",
            Time(Default::default()),
        );
        assert_eq!(c.status, "True");
        assert_eq!(c.reason, REASON_SYNC_COMPLETED);
        let c = new_condition(
            READY,
            false,
            REASON_SYNC_FAILED,
            "no",
            Time(Default::default()),
        );
        assert_eq!(condition_status(&c), Some(false));
    }
}

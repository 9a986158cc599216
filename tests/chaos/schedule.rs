//! The schedule: server writes and faults, each chosen by the seed's generator.
//!
//! The harness is the only writer, so the server's state (and therefore every choice that
//! depends on it) follows from the seed alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use apisim::{Control, FailSpec, Fault, LatencySpec};
use serde_json::{Value, json};

use super::{RESOURCE, Rng};

/// The label that puts an object into group `a` or `b` (the selector caches watch group `a`).
pub const GROUP_LABEL: &str = "chaos.repocache.dev/group";
/// The label every write sets to its own sequence number.
pub const EPOCH_LABEL: &str = "chaos.repocache.dev/epoch";

/// How many names the schedule writes to.
const NAMES: usize = 16;

/// What the schedule picks when it injects a fault: one of apisim's [`Fault`]s with a
/// distribution for its parameters (a stall shorter or longer than the TTL, a storm of one
/// status code, a restart that keeps or wipes the objects), or, for `Compact`, two of them.
/// The schedule turns each into the `Fault` values it injects through `Control::inject`, the
/// same entry point as apisim's HTTP control API; no fault is spelled out twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Disruption {
    /// Every open watch ends cleanly.
    CloseWatches,
    /// Watches deliver nothing for less than the TTL.
    StallShort,
    /// Watches deliver nothing for longer than the TTL.
    StallLong,
    /// The history is compacted and watches closed: resuming gets 410 Gone.
    Compact,
    /// 429 Too Many Requests with Retry-After.
    TooManyRequests,
    /// A storm of 500 Internal Server Error.
    InternalError,
    /// A storm of 503 Service Unavailable.
    Unavailable,
    /// A storm of 504 Gateway Timeout.
    GatewayTimeout,
    /// 502 with an HTML page instead of a Status.
    HtmlPage,
    /// Slow list or watch requests.
    Latency,
    /// The server restarts and keeps its objects (history and connections lost).
    RestartKeep,
    /// The server restarts and loses its objects too.
    RestartWipe,
    /// A line that is not JSON on every watch.
    MalformedLine,
    /// An event whose object does not decode.
    Undecodable,
    /// A watch line cut in the middle (the watch ends).
    CutLine,
    /// An object created or changed without any watch event.
    SideDoorPut,
    /// An object deleted without any watch event.
    SideDoorDelete,
}

impl Disruption {
    /// Every disruption.
    pub const ALL: [Disruption; 17] = [
        Self::CloseWatches,
        Self::StallShort,
        Self::StallLong,
        Self::Compact,
        Self::TooManyRequests,
        Self::InternalError,
        Self::Unavailable,
        Self::GatewayTimeout,
        Self::HtmlPage,
        Self::Latency,
        Self::RestartKeep,
        Self::RestartWipe,
        Self::MalformedLine,
        Self::Undecodable,
        Self::CutLine,
        Self::SideDoorPut,
        Self::SideDoorDelete,
    ];

    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloseWatches => "watch-close",
            Self::StallShort => "stall<ttl",
            Self::StallLong => "stall>ttl",
            Self::Compact => "compact-410",
            Self::TooManyRequests => "429",
            Self::InternalError => "500",
            Self::Unavailable => "503",
            Self::GatewayTimeout => "504",
            Self::HtmlPage => "502-html",
            Self::Latency => "latency",
            Self::RestartKeep => "restart",
            Self::RestartWipe => "restart-wipe",
            Self::MalformedLine => "malformed-line",
            Self::Undecodable => "undecodable",
            Self::CutLine => "cut-line",
            Self::SideDoorPut => "side-door-put",
            Self::SideDoorDelete => "side-door-delete",
        }
    }
}

/// What the server wrote at one resourceVersion of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The `epoch` label.
    pub epoch: String,
    /// `spec.url`.
    pub url: String,
}

/// One state of the server: every object's resourceVersion and group, by name.
pub type State = BTreeMap<String, (u64, String)>;

/// The schedule's state: the server, the names, and what was written.
pub struct Schedule {
    control: Control,
    ttl: Duration,
    names: Vec<String>,
    epoch: u64,
    writes: u64,
    versions: HashMap<(String, String), Version>,
    faults: BTreeMap<&'static str, u64>,
    /// Every state the server went through, in order (the harness is its only writer).
    history: Vec<State>,
    /// Names a side-door write touched: a cache may hold them in a version no server state
    /// had together with the others (the watch never told it), so the per-snapshot check
    /// leaves them out.
    side_door: BTreeSet<String>,
    /// How many relists (with reason `expired` or `error`) the injected faults can explain,
    /// per cache.
    relist_budget: u64,
}

impl Schedule {
    pub(super) fn new(control: Control, ttl: Duration) -> Self {
        Self {
            control,
            ttl,
            names: (0..NAMES).map(|i| format!("repo-{i:02}")).collect(),
            epoch: 0,
            writes: 0,
            versions: HashMap::new(),
            faults: BTreeMap::new(),
            history: vec![State::new()],
            side_door: BTreeSet::new(),
            relist_budget: 0,
        }
    }

    /// Every state the server went through, oldest first.
    pub fn history(&self) -> &[State] {
        &self.history
    }

    /// Names written through the side door.
    pub fn side_door_names(&self) -> &BTreeSet<String> {
        &self.side_door
    }

    /// How many `expired` and `error` relists the injected faults explain, per cache: each
    /// injected failure at most one, every other disruption (closed, cut or broken watch,
    /// compaction, restart, latency) at most two, side-door writes none.
    pub fn relist_budget(&self) -> u64 {
        self.relist_budget
    }

    /// Appends the server's current state to the history.
    fn note_state(&mut self) {
        let state: State = self
            .control
            .list(RESOURCE)
            .unwrap_or_default()
            .iter()
            .filter_map(|o| {
                let meta = &o["metadata"];
                let name = meta["name"].as_str()?.to_owned();
                let rv = meta["resourceVersion"].as_str()?.parse().ok()?;
                let group = meta["labels"][GROUP_LABEL]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                Some((name, (rv, group)))
            })
            .collect();
        if self.history.last() != Some(&state) {
            self.history.push(state);
        }
    }

    /// After the chaos: one write through the API to every name, so that every object's
    /// final version reaches the watches as an event (an object that exists is patched; one
    /// that does not is created and deleted, which also removes a version a cache kept of
    /// a side-door delete). A cache without a TTL converges only through these events.
    pub(super) fn sweep(&mut self) {
        for name in self.names.clone() {
            let epoch = self.next_epoch();
            if self.current(&name).is_some() {
                self.patch(&name, json!({"metadata": {"labels": {EPOCH_LABEL: epoch}}}));
            } else {
                let obj = json!({
                    "apiVersion": "packages.glasskube.dev/v1alpha1",
                    "kind": "PackageRepository",
                    "metadata": {"name": name, "labels": {GROUP_LABEL: "a", EPOCH_LABEL: epoch}},
                    "spec": {"url": "https://swept.example/"},
                });
                if let Ok(written) = self.control.create(obj) {
                    self.record(&written);
                    self.note_state();
                }
                let _ = self.control.delete(RESOURCE, None, &name);
                self.note_state();
            }
        }
    }

    /// The names objects may have.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every version the server wrote, by (name, resourceVersion).
    pub fn versions(&self) -> &HashMap<(String, String), Version> {
        &self.versions
    }

    /// Faults injected, by kind.
    pub fn fault_counts(&self) -> BTreeMap<&'static str, u64> {
        self.faults.clone()
    }

    /// Writes made.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Creates half of the names.
    pub(super) fn populate(&mut self, rng: &mut Rng) {
        for i in 0..NAMES / 2 {
            let name = self.names[i * 2].clone();
            self.create(rng, &name);
        }
    }

    /// One step: a write (three times in four) or a fault.
    pub(super) fn step(&mut self, rng: &mut Rng) {
        if rng.chance(75) {
            self.write(rng);
        } else {
            let disruption = *rng.pick(&Disruption::ALL);
            self.disrupt(rng, disruption);
            *self.faults.entry(disruption.as_str()).or_default() += 1;
        }
    }

    fn next_epoch(&mut self) -> String {
        self.epoch += 1;
        self.writes += 1;
        self.epoch.to_string()
    }

    fn url(rng: &mut Rng) -> String {
        format!("https://r{}.example/", rng.below(1000))
    }

    fn group(rng: &mut Rng) -> &'static str {
        if rng.chance(50) { "a" } else { "b" }
    }

    fn record(&mut self, written: &Value) {
        let meta = &written["metadata"];
        let (Some(name), Some(rv)) = (meta["name"].as_str(), meta["resourceVersion"].as_str())
        else {
            return;
        };
        self.versions.insert(
            (name.to_owned(), rv.to_owned()),
            Version {
                epoch: meta["labels"][EPOCH_LABEL]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                url: written["spec"]["url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            },
        );
    }

    fn object(&mut self, rng: &mut Rng, name: &str) -> Value {
        let epoch = self.next_epoch();
        json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "PackageRepository",
            "metadata": {"name": name, "labels": {GROUP_LABEL: Self::group(rng), EPOCH_LABEL: epoch}},
            "spec": {"url": Self::url(rng)},
        })
    }

    fn create(&mut self, rng: &mut Rng, name: &str) {
        let obj = self.object(rng, name);
        if let Ok(written) = self.control.create(obj) {
            self.record(&written);
        }
        self.note_state();
    }

    fn patch(&mut self, name: &str, patch: Value) {
        if let Ok(written) = self.control.merge_patch(RESOURCE, None, name, &patch) {
            self.record(&written);
        }
        self.note_state();
    }

    fn current(&self, name: &str) -> Option<Value> {
        self.control.get(RESOURCE, None, name).ok()
    }

    /// A write to one name, chosen by whether it exists.
    fn write(&mut self, rng: &mut Rng) {
        let name = rng.pick(&self.names).clone();
        let Some(current) = self.current(&name) else {
            self.create(rng, &name);
            return;
        };
        match rng.below(6) {
            // A new URL.
            0 | 1 => {
                let epoch = self.next_epoch();
                let url = Self::url(rng);
                self.patch(
                    &name,
                    json!({"metadata": {"labels": {EPOCH_LABEL: epoch}}, "spec": {"url": url}}),
                );
            }
            // Into or out of the selector.
            2 => {
                let group = if current["metadata"]["labels"][GROUP_LABEL] == "a" {
                    "b"
                } else {
                    "a"
                };
                let epoch = self.next_epoch();
                self.patch(
                    &name,
                    json!({"metadata": {"labels": {GROUP_LABEL: group, EPOCH_LABEL: epoch}}}),
                );
            }
            // Delete.
            3 => {
                self.writes += 1;
                let _ = self.control.delete(RESOURCE, None, &name);
                self.note_state();
            }
            // Delete and recreate with the same name.
            4 => {
                self.writes += 1;
                let _ = self.control.delete(RESOURCE, None, &name);
                self.note_state();
                self.create(rng, &name);
            }
            // Replace the whole object (PUT without a precondition).
            _ => {
                let obj = self.object(rng, &name);
                if let Ok(written) = self.control.replace(obj) {
                    self.record(&written);
                }
                self.note_state();
            }
        }
    }

    fn fail(&mut self, rng: &mut Rng, code: u16, max: u64) -> FailSpec {
        let verb = *rng.pick(&["list", "watch", "*"]);
        let count = rng.range(1, max + 1);
        self.relist_budget += count;
        let mut spec = FailSpec::new(verb, RESOURCE, code, count as u32);
        if code == 429 {
            spec.retry_after_seconds = Some(1);
        }
        spec
    }

    fn existing(&self, rng: &mut Rng) -> Option<Value> {
        let objects = self.control.list(RESOURCE).unwrap_or_default();
        (!objects.is_empty()).then(|| rng.pick(&objects).clone())
    }

    /// The faults `disruption` stands for, with their parameters drawn from `rng`.
    fn faults(&mut self, rng: &mut Rng, disruption: Disruption) -> Vec<Fault> {
        let ttl_ms = self.ttl.as_millis() as u64;
        let fail = Fault::Fail;
        match disruption {
            Disruption::CloseWatches => vec![Fault::CloseWatches],
            Disruption::StallShort => vec![Fault::StallWatches {
                duration_ms: Some(rng.range(ttl_ms / 4, ttl_ms / 2)),
            }],
            Disruption::StallLong => vec![Fault::StallWatches {
                duration_ms: Some(rng.range(ttl_ms * 2, ttl_ms * 3)),
            }],
            Disruption::Compact => vec![Fault::Compact, Fault::CloseWatches],
            Disruption::TooManyRequests => vec![fail(self.fail(rng, 429, 2))],
            Disruption::InternalError => vec![fail(self.fail(rng, 500, 4))],
            Disruption::Unavailable => vec![fail(self.fail(rng, 503, 4))],
            Disruption::GatewayTimeout => vec![fail(self.fail(rng, 504, 4))],
            Disruption::HtmlPage => vec![fail(self.fail(rng, 502, 3).html_page())],
            Disruption::Latency => vec![Fault::Latency(LatencySpec {
                verb: Some((*rng.pick(&["list", "watch"])).to_owned()),
                resource: Some(RESOURCE.to_owned()),
                latency_ms: rng.range(20, 300),
                count: Some(rng.range(1, 4) as u32),
            })],
            Disruption::RestartKeep => vec![Fault::Restart { keep_objects: true }],
            Disruption::RestartWipe => vec![Fault::Restart {
                keep_objects: false,
            }],
            Disruption::MalformedLine => vec![Fault::MalformedLine { line: None }],
            Disruption::Undecodable => vec![Fault::Undecodable {
                resource: RESOURCE.to_owned(),
            }],
            Disruption::CutLine => {
                let mut object = self.existing(rng).unwrap_or_else(|| {
                    json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
                        "metadata": {"name": "never-whole"}, "spec": {}})
                });
                object["spec"]["url"] = json!("https://cut.example/");
                vec![Fault::CutLine {
                    resource: RESOURCE.to_owned(),
                    event_type: "MODIFIED".to_owned(),
                    object,
                }]
            }
            Disruption::SideDoorPut => {
                let name = rng.pick(&self.names).clone();
                let mut object = self
                    .current(&name)
                    .unwrap_or_else(|| self.object(rng, &name));
                let epoch = self.next_epoch();
                object["metadata"]["labels"][EPOCH_LABEL] = json!(epoch);
                object["spec"]["url"] = json!(Self::url(rng));
                self.side_door.insert(name);
                vec![Fault::SideDoorPut { object }]
            }
            Disruption::SideDoorDelete => {
                let Some(name) = self
                    .existing(rng)
                    .and_then(|obj| obj["metadata"]["name"].as_str().map(str::to_owned))
                else {
                    return Vec::new();
                };
                self.writes += 1;
                self.side_door.insert(name.clone());
                vec![Fault::SideDoorDelete {
                    resource: RESOURCE.to_owned(),
                    namespace: None,
                    name,
                }]
            }
        }
    }

    /// Injects the faults `disruption` stands for and notes what they wrote.
    fn disrupt(&mut self, rng: &mut Rng, disruption: Disruption) {
        self.relist_budget += match disruption {
            Disruption::SideDoorPut | Disruption::SideDoorDelete => 0,
            _ => 2,
        };
        for fault in self.faults(rng, disruption) {
            let wrote = matches!(fault, Fault::SideDoorPut { .. });
            let objects_change = matches!(
                fault,
                Fault::SideDoorPut { .. }
                    | Fault::SideDoorDelete { .. }
                    | Fault::Restart {
                        keep_objects: false
                    }
            );
            let outcome = self.control.inject(fault);
            if wrote && let Ok(Some(written)) = outcome.map(|o| o.object) {
                self.record(&written);
            }
            if objects_change {
                self.note_state();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use apisim::{Server, ServerConfig};

    use super::*;

    /// apisim's faults the schedule never draws, and why. A new apisim fault fails
    /// `the_schedule_draws_every_fault_apisim_has` until the schedule draws it or it is listed here.
    const NOT_DRAWN: [&str; 3] = [
        // Ending a stall early adds nothing a stall with a duration does not.
        "releaseWatches",
        // Covered by `undecodable` (an event the watch cannot use) and by the hostile-input and
        // decoding tests.
        "injectEvent",
        // Covered by `malformedLine` and `cutLine`; the hostile-input tests send raw bytes.
        "injectBytes",
    ];

    #[tokio::test]
    async fn the_schedule_draws_every_fault_apisim_has() {
        let server = Server::start(ServerConfig::default()).await.unwrap();
        let mut schedule = Schedule::new(server.control(), Duration::from_millis(400));
        let mut rng = Rng::new(1);
        schedule.populate(&mut rng);
        let drawn: BTreeSet<&str> = Disruption::ALL
            .iter()
            .flat_map(|d| schedule.faults(&mut rng, *d))
            .map(|f| f.name())
            .collect();
        let all: BTreeSet<&str> = Fault::examples().iter().map(Fault::name).collect();
        let not_drawn: BTreeSet<&str> = NOT_DRAWN.into_iter().collect();
        assert!(
            drawn.is_disjoint(&not_drawn),
            "drawn and listed as not drawn: {drawn:?}"
        );
        assert_eq!(
            drawn.union(&not_drawn).copied().collect::<BTreeSet<_>>(),
            all,
            "every apisim fault is drawn by a Disruption or listed in NOT_DRAWN"
        );
    }
}

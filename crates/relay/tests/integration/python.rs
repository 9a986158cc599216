//! The official Python `kubernetes` client (a client nobody here wrote) against apisim directly
//! and through the relay: list, get, paging, watch resumed from a list's and an event's
//! resourceVersion and from outside the history (410), create/replace/patch/delete passing
//! through, the API server's errors, and exec over the spliced WebSocket. The script
//! (`tests/python/clients.py`) makes the calls and prints both answers of each; this test
//! compares them after dropping managedFields.
//!
//! The interpreter is `$REPOCACHE_PYTHON`, or `python3` on PATH, with the client installed from
//! `tests/python/requirements.txt`; without either the test fails and says how to install them.

use std::path::PathBuf;

use apisim::ServerConfig;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::{self, drop_managed_fields};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/clients.py");
const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/requirements.txt");

/// How long the whole script may take (its watches end after 10 s each when events are missing).
const SCRIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn install_hint() -> String {
    format!(
        "install Python 3 and the client: python3 -m pip install --user -r {REQUIREMENTS} \
         (or into a venv, and set REPOCACHE_PYTHON to its python)"
    )
}

/// `$REPOCACHE_PYTHON`, or `python3` on PATH.
fn python() -> PathBuf {
    if let Some(explicit) = std::env::var_os("REPOCACHE_PYTHON") {
        return PathBuf::from(explicit);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "python3 is required for this test but is not on PATH (nor is $REPOCACHE_PYTHON set); {}",
                install_hint()
            )
        })
}

/// Fails the test, with how to install it, when the interpreter has no `kubernetes` module.
async fn require_client(python: &PathBuf) {
    let out = Command::new(python)
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} cannot run ({e}); {}", python.display(), install_hint()));
    assert!(
        out.status.success(),
        "the Python `kubernetes` client is not installed for {}; {}",
        python.display(),
        install_hint()
    );
}

/// A step's answer as it is compared: without managedFields; a 410 by its code and reason only
/// (the message names the oldest version each one keeps, which differ).
fn comparable(name: &str, answer: &Value) -> Value {
    let answer = drop_managed_fields(answer.clone());
    if name.contains("410")
        && let Some(e) = answer.get("exception")
    {
        let reason = e["reason"].as_str().unwrap_or_default();
        return json!({"status": e["status"], "reason": reason.split(':').next()});
    }
    answer
}

#[tokio::test]
async fn the_python_client_gets_the_same_answers_through_the_relay() {
    let python = python();
    require_client(&python).await;
    repocache_test_support::init_tracing();
    let server = common::apisim_with_pod(ServerConfig::default().with_history_size(16)).await;
    let relay = common::ready(common::builder(&server).history(16)).await;
    let dir = tempfile::tempdir().unwrap();
    let direct = dir.path().join("direct.kubeconfig");
    let via = dir.path().join("relay.kubeconfig");
    std::fs::write(&direct, server.kubeconfig_yaml().unwrap()).unwrap();
    std::fs::write(&via, relay.kubeconfig(Some("default")).unwrap()).unwrap();
    let before = relay.stats();

    let out = tokio::time::timeout(
        SCRIPT_TIMEOUT,
        Command::new(&python)
            .arg(SCRIPT)
            .arg(&direct)
            .arg(&via)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("clients.py timed out")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "clients.py failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "clients.py printed no JSON ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    println!("Python kubernetes client {}", report["client"]);

    let steps = report["steps"].as_array().unwrap();
    let mut by_name = std::collections::BTreeMap::new();
    for step in steps {
        let name = step["name"].as_str().unwrap();
        if step.get("direct").is_none() {
            by_name.insert(name.to_owned(), step["relay"].clone());
            continue;
        }
        let (a, b) = (
            comparable(name, &step["direct"]),
            comparable(name, &step["relay"]),
        );
        assert_eq!(
            a,
            b,
            "{name}: apisim directly (left) and through the relay (right) differ:\n{}\n{}",
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&b).unwrap(),
        );
        by_name.insert(name.to_owned(), a);
    }
    // The steps did what they claim (so that equal answers mean something).
    let step = |name: &str| -> &Value {
        by_name
            .get(name)
            .unwrap_or_else(|| panic!("no step {name:?}"))
    };
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let seeded = control_names(&server, "packagerepositories");
    assert!(!seeded.is_empty());
    assert_eq!(
        names(step("list packagerepositories")),
        seeded
            .iter()
            .filter(|n| *n != "py-a")
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(
        !step("list packages (every namespace)")
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        step("get packagerepository glasskube")["metadata"]["name"],
        "glasskube"
    );
    assert_eq!(
        step("get a missing packagerepository")["exception"]["status"],
        404
    );
    let deleted = step("delete py-b (the answer, not compared)");
    assert!(deleted.get("exception").is_none(), "{deleted}");
    assert_eq!(
        step("get py-b after its delete")["exception"]["status"],
        404
    );
    assert_eq!(
        step("create py-a again (409 AlreadyExists)")["exception"]["status"],
        409
    );
    assert_eq!(
        step("replace py-a with a stale resourceVersion (409 Conflict)")["exception"]["body"]["reason"],
        "Conflict"
    );
    assert_eq!(step("get py-a")["spec"]["url"], "https://a2.example");
    assert_eq!(names(step("list team=py")), ["py-a"]);
    let paged = step("list, 2 at a time");
    assert_eq!(names(&paged["items"]), seeded);
    assert!(paged["pages"].as_u64().unwrap() >= 2, "{paged}");
    let events = |name: &str| -> Vec<String> {
        step(name)
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {}", step(name)))
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["type"].as_str().unwrap(),
                    e["object"]["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        events("watch from the list's resourceVersion"),
        [
            "ADDED py-a",
            "ADDED py-b",
            "MODIFIED py-a",
            "MODIFIED py-b",
            "DELETED py-b"
        ]
    );
    assert_eq!(
        events("watch from the first event's resourceVersion"),
        [
            "ADDED py-b",
            "MODIFIED py-a",
            "MODIFIED py-b",
            "DELETED py-b"
        ]
    );
    assert_eq!(step("exec echo"), "from python\n");
    assert_eq!(
        step("watch from outside the history (410 Expired)"),
        &json!({"status": 410, "reason": "Expired"})
    );
    // The relay served the watches itself (none passed upstream), the 410 from its own history.
    let stats = relay.stats();
    println!("relay: {stats:?}");
    assert!(
        stats.watches_served >= before.watches_served + 3,
        "{stats:?}"
    );
    assert_eq!(stats.watches_passed, before.watches_passed, "{stats:?}");
    assert_eq!(stats.watch_expired, before.watch_expired + 1, "{stats:?}");
}

fn control_names(server: &apisim::ServerHandle, plural: &str) -> Vec<String> {
    let mut names: Vec<String> = server
        .control()
        .list(plural)
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

//! `pods/{name}/exec` over WebSocket, the way kubectl (1.30+) and the Python client ask for it:
//! `GET …/exec?command=…&container=…&stdin=…&stdout=…&stderr=…` with `Upgrade: websocket` and
//! `Sec-WebSocket-Protocol: v5.channel.k8s.io` (or `v4.channel.k8s.io`). Every binary message
//! starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the exit `Status` (JSON), 4 terminal
//! resizes, and in v5 255 "close channel" (`[255, 0]`: stdin ended).
//!
//! There are no containers: the pod must exist (a stored core `v1` `Pod`, served when a test
//! registers it, [`ResourceDef::pods`](crate::ResourceDef::pods)) and the command is one of a
//! small built-in set: `echo ARGS…` (ARGS joined by spaces, and a newline, on stdout), `cat`
//! (stdin back on stdout until stdin ends), `true`, `false` (exit 1), `exit N` (exit N), and
//! anything else is "command not found" on stderr with exit 127. Exit codes other than 0 are
//! reported as the API server's `NonZeroExitCode` `Status`, from which kubectl takes its own
//! exit code. SPDY (kubectl's fallback) is not spoken: such a request gets 400.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts as _, Request};
use axum::response::Response;
use bytes::Bytes;
use k8s_wire::ListOptions;
use serde_json::{Value, json};

use super::route::ResourcePath;
use crate::errors::ApiError;
use crate::resources::ResId;
use crate::server::Shared;

/// The stream protocols apisim speaks, in order of preference.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
/// v5: `[CLOSE, channel]` says the sender closed that channel.
const CLOSE: u8 = 255;

/// How long a command takes to "start" before its first output. client-go registers its
/// stream handlers only after the upgrade, in another goroutine: output a server sends in the
/// first instants is discarded ("Unknown stream id 1, discarding message"), which a real
/// container's process start always outlasts, and which a busy machine made visible here.
const PROCESS_START: std::time::Duration = std::time::Duration::from_millis(250);

/// What an exec request asked for.
struct Exec {
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

fn flag(query: &ListOptions, name: &str) -> bool {
    query
        .other
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .is_some_and(|(_, v)| v == "true" || v == "1")
}

/// Answers `pods/{name}/exec`: 101 and the exec session, or the API server's error.
pub(super) async fn handle(
    shared: &Shared,
    res: ResId,
    rp: &ResourcePath<'_>,
    raw_query: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let name = rp.target.name.ok_or_else(ApiError::path_not_found)?;
    let pod = shared.store.get(res, rp.target.namespace, name)?;
    let query = ListOptions::parse(raw_query).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let command: Vec<String> = query
        .other
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    check_container(&pod, name, query.get("container"))?;
    let exec = Exec {
        command,
        stdin: flag(&query, "stdin"),
        stdout: flag(&query, "stdout"),
        stderr: flag(&query, "stderr"),
    };
    let (mut parts, _body) = req.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| {
            ApiError::bad_request(format!(
                "Upgrade request required: apisim serves exec over WebSocket only ({}); SPDY is not supported",
                PROTOCOLS.join(", ")
            ))
        })?
        .protocols(PROTOCOLS);
    let Some(protocol) = upgrade.selected_protocol().cloned() else {
        return Err(ApiError::bad_request(format!(
            "no supported stream protocol requested; apisim speaks {}",
            PROTOCOLS.join(", ")
        )));
    };
    let v5 = protocol == PROTOCOLS[0];
    Ok(upgrade.on_upgrade(move |socket| session(socket, exec, v5)))
}

/// The container the request names must be one of the pod's (no name: the first); a pod that
/// ended cannot be exec'd into.
fn check_container(pod: &Value, name: &str, container: Option<&str>) -> Result<(), ApiError> {
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match container {
        Some(c) if !c.is_empty() && !names.contains(&c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        _ if names.is_empty() => Err(ApiError::bad_request(format!(
            "pod {name} has no containers"
        ))),
        _ => Ok(()),
    }
}

/// One message on `channel`.
fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(Bytes::from(bytes))
}

/// The `Status` on the error channel: success, or the API server's `NonZeroExitCode`.
fn exit_status(command: &[String], code: u8) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// Runs the built-in command on the upgraded connection, then sends its exit status and closes.
async fn session(mut socket: WebSocket, exec: Exec, v5: bool) {
    let (program, args) = match exec.command.split_first() {
        Some((p, a)) => (p.as_str(), a),
        None => return,
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code: u8 = match program {
        "echo" => {
            stdout = format!("{}\n", args.join(" ")).into_bytes();
            0
        }
        "true" => 0,
        "false" => 1,
        "exit" => args.first().and_then(|a| a.parse().ok()).unwrap_or(2),
        "cat" => {
            if exec.stdin && !cat(&mut socket, exec.stdout, v5).await {
                return;
            }
            0
        }
        other => {
            stderr = format!("apisim: {other}: command not found\n").into_bytes();
            127
        }
    };
    // `cat` with stdin answers what the client sent, so the client's streams are set up.
    if !(program == "cat" && exec.stdin) {
        tokio::time::sleep(PROCESS_START).await;
    }
    let mut out = Vec::new();
    if exec.stdout && !stdout.is_empty() {
        out.push(frame(STDOUT, &stdout));
    }
    if exec.stderr && !stderr.is_empty() {
        out.push(frame(STDERR, &stderr));
    }
    out.push(frame(
        ERROR,
        exit_status(&exec.command, code).to_string().as_bytes(),
    ));
    for message in out {
        if socket.send(message).await.is_err() {
            return;
        }
    }
    // A normal closure (1000): client-go takes any other close code as an error.
    let close = CloseFrame {
        code: close_code::NORMAL,
        reason: "".into(),
    };
    let _ = socket.send(Message::Close(Some(close))).await;
    // Reads the client's close answer (and anything before it) so the close is clean.
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}

/// `cat`: stdin back on stdout until stdin ends (v5's close-channel message) or the client
/// goes away (`false`: nothing more can be sent).
async fn cat(socket: &mut WebSocket, stdout: bool, v5: bool) -> bool {
    while let Some(message) = socket.recv().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) | Err(_) => return false,
            Ok(_) => continue,
        };
        match data.split_first() {
            Some((&STDIN, rest))
                if stdout
                    && !rest.is_empty()
                    && socket.send(frame(STDOUT, rest)).await.is_err() =>
            {
                return false;
            }
            Some((&CLOSE, [STDIN])) if v5 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_and_phases() {
        let pod =
            json!({"spec": {"containers": [{"name": "main"}]}, "status": {"phase": "Running"}});
        assert!(check_container(&pod, "p", None).is_ok());
        assert!(check_container(&pod, "p", Some("main")).is_ok());
        let err = check_container(&pod, "p", Some("side")).unwrap_err();
        assert_eq!(err.message, "container side is not valid for pod p");
        let done =
            json!({"spec": {"containers": [{"name": "main"}]}, "status": {"phase": "Succeeded"}});
        assert!(check_container(&done, "p", None).is_err());
        assert!(check_container(&json!({}), "p", None).is_err());
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(exit_status(&[], 0)["status"], "Success");
        let failed = exit_status(&["false".into()], 1);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "1");
    }
}

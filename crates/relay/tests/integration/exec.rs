//! `kubectl exec` (WebSocket `v5.channel.k8s.io`, kubectl 1.30+) against apisim's `pods/exec`,
//! directly and through the relay, which splices the upgraded connection: the same output,
//! errors and exit codes.

use std::process::Stdio;

use apisim::ServerConfig;
use tokio::io::AsyncWriteExt as _;

use crate::common::{self, T};
use crate::kubectl::Kubectl;

/// kubectl's exit code, stdout and stderr.
async fn exec(kubectl: &Kubectl, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = kubectl.cmd(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(T, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn kubectl_exec_through_the_relay_answers_as_apisim_does() {
    common::apisim().await; // tracing
    let server = common::apisim_with_pod(ServerConfig::default()).await;
    let relay = common::ready(common::builder(&server)).await;
    let direct = Kubectl::new(&server.kubeconfig_yaml().unwrap());
    let via = Kubectl::new(&relay.kubeconfig(Some("default")).unwrap());
    let proxied = relay.stats().proxied;

    let cases: [(&[&str], Option<&str>, i32, &str); 6] = [
        (
            &["exec", "web", "--", "echo", "hello", "relay"],
            None,
            0,
            "hello relay\n",
        ),
        (
            &["exec", "-i", "web", "--", "cat"],
            Some("one\ntwo\n"),
            0,
            "one\ntwo\n",
        ),
        (&["exec", "web", "--", "false"], None, 1, ""),
        (
            &["exec", "web", "-c", "main", "--", "exit", "3"],
            None,
            3,
            "",
        ),
        (&["exec", "web", "--", "no-such-command"], None, 127, ""),
        (&["exec", "web", "-c", "sidecar", "--", "true"], None, 1, ""),
    ];
    for (args, stdin, code, stdout) in cases {
        let a = exec(&direct, args, stdin).await;
        let b = exec(&via, args, stdin).await;
        assert_eq!(
            a, b,
            "kubectl {args:?}: apisim directly, then through the relay"
        );
        assert_eq!(
            (a.0, a.1.as_str()),
            (code, stdout),
            "kubectl {args:?}: {}",
            a.2
        );
    }
    let (_, _, stderr) = exec(&via, &["exec", "web", "--", "no-such-command"], None).await;
    assert!(
        stderr.contains("no-such-command: command not found"),
        "{stderr}"
    );
    let (_, _, stderr) = exec(&via, &["exec", "web", "-c", "sidecar", "--", "true"], None).await;
    assert!(
        stderr.contains("container sidecar is not valid for pod web"),
        "{stderr}"
    );

    // Every exec through the relay reached apisim over a spliced WebSocket.
    let upgrades = server
        .requests()
        .iter()
        .filter(|r| r.resource == "pods/exec" && r.status == 101)
        .count();
    assert_eq!(upgrades, 2 * 5 + 1, "exec sessions apisim served");
    assert!(relay.stats().proxied > proxied);
}

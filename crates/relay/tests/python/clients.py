#!/usr/bin/env python3
"""The official Python `kubernetes` client against apisim directly and through the relay.

Usage: clients.py DIRECT_KUBECONFIG RELAY_KUBECONFIG

Runs the same calls against both endpoints and prints one JSON document on stdout:

    {"client": "<kubernetes version>",
     "steps": [{"name": "...", "direct": <answer>, "relay": <answer>}, ...]}

An answer is what the client returned (plain JSON), or {"exception": {"status", "reason", "body"}}
for an ApiException. Writes go through the relay only; for them "relay" is the write's answer and
"direct" what apisim says afterwards (a step without "direct" is reported, not compared). The Rust test (tests/integration/python.rs) compares each
step's two answers after dropping managedFields, and checks that the steps did what they should.
Nothing here decides pass or fail.

Run by `cargo test -p repocache-relay --test integration python::`, which starts apisim and the
relay (apisim with a history of 16 events, the relay with 16 per kind: the last step's watch resumes
from outside both and gets 410 Expired from both).
"""

import json
import sys

import kubernetes
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

GROUP = "packages.glasskube.dev"
VERSION = "v1alpha1"
PLURAL = "packagerepositories"
WATCH_TIMEOUT = 10  # seconds; a watch that misses events ends after this and shows fewer


def answer(call):
    """The call's result as JSON, or its ApiException."""
    try:
        return call()
    except ApiException as e:
        try:
            body = json.loads(e.body) if e.body else None
        except ValueError:
            body = e.body
        return {"exception": {"status": e.status, "reason": e.reason, "body": body}}


def repo(name, url, labels=None, resource_version=None):
    meta = {"name": name, "labels": labels or {}}
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PackageRepository",
        "metadata": meta,
        "spec": {"url": url},
    }


def list_items(api, **kwargs):
    return api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)["items"]


def all_pages(api, limit, **kwargs):
    """Every item, `limit` at a time, following each endpoint's own continue tokens."""
    items, token, pages = [], None, 0
    while True:
        page = api.list_cluster_custom_object(
            GROUP, VERSION, PLURAL, limit=limit, _continue=token, **kwargs
        )
        items += page["items"]
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            return {"pages": pages, "items": items}


def watch_from(api, resource_version, count):
    """The first `count` events of a watch resumed from `resource_version` (fewer if the
    watch ends first), as (type, object)."""
    events = []
    w = watch.Watch()
    for event in w.stream(
        api.list_cluster_custom_object,
        GROUP,
        VERSION,
        PLURAL,
        resource_version=resource_version,
        timeout_seconds=WATCH_TIMEOUT,
    ):
        events.append({"type": event["type"], "object": event["raw_object"]})
        if len(events) >= count:
            w.stop()
            break
    return events


def main():
    direct_config, relay_config = sys.argv[1], sys.argv[2]
    direct = config.new_client_from_config(config_file=direct_config)
    relay = config.new_client_from_config(config_file=relay_config)
    d_api, r_api = client.CustomObjectsApi(direct), client.CustomObjectsApi(relay)
    steps = []

    def both(name, call):
        steps.append({"name": name, "direct": answer(lambda: call(d_api, direct)),
                      "relay": answer(lambda: call(r_api, relay))})

    def write(name, call, check):
        """A write through the relay; "direct" is apisim's view right after (`check`)."""
        result = answer(lambda: call(r_api))
        steps.append({"name": name, "relay": result, "direct": answer(lambda: check(d_api))})
        return result

    # Reads of what apisim was seeded with.
    both("version", lambda _, c: client.VersionApi(c).get_code().to_dict())
    both("discovery: api groups",
         lambda _, c: sorted(g.name for g in client.ApisApi(c).get_api_versions().groups))
    both("list packagerepositories", lambda a, _: list_items(a))
    both("list packages (every namespace)",
         lambda a, _: a.list_cluster_custom_object(GROUP, VERSION, "packages")["items"])
    both("get packagerepository glasskube",
         lambda a, _: a.get_cluster_custom_object(GROUP, VERSION, PLURAL, "glasskube"))
    both("get a missing packagerepository",
         lambda a, _: a.get_cluster_custom_object(GROUP, VERSION, PLURAL, "no-such-repo"))
    # Each endpoint's own list resourceVersion: the relay's is its snapshot's (the kind's last
    # change), apisim's its global counter; each is where a client of that endpoint resumes.
    start = {id(a): a.list_cluster_custom_object(GROUP, VERSION, PLURAL)["metadata"]["resourceVersion"]
             for a in (d_api, r_api)}
    steps.append({"name": "resume points (not compared)", "relay": start[id(r_api)],
                  "apisim": start[id(d_api)]})

    # Writes pass through the relay: create, replace, patch, delete (5 events).
    get = lambda name: lambda a: a.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    created = write("create py-a",
                    lambda a: a.create_cluster_custom_object(
                        GROUP, VERSION, PLURAL, repo("py-a", "https://a.example", {"team": "py"})),
                    get("py-a"))
    write("create py-b",
          lambda a: a.create_cluster_custom_object(
              GROUP, VERSION, PLURAL, repo("py-b", "https://b.example", {"team": "py"})),
          get("py-b"))
    rv = created.get("metadata", {}).get("resourceVersion")
    write("replace py-a",
          lambda a: a.replace_cluster_custom_object(
              GROUP, VERSION, PLURAL, "py-a",
              repo("py-a", "https://a2.example", {"team": "py"}, rv)),
          get("py-a"))
    write("patch py-b",
          lambda a: a.patch_cluster_custom_object(
              GROUP, VERSION, PLURAL, "py-b", {"metadata": {"labels": {"patched": "yes"}}}),
          get("py-b"))
    deleted = answer(lambda: r_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, "py-b"))
    steps.append({"name": "delete py-b (the answer, not compared)", "relay": deleted})
    both("get py-b after its delete", lambda a, _: get("py-b")(a))
    # Errors the API server gives, through both.
    both("create py-a again (409 AlreadyExists)",
         lambda a, _: a.create_cluster_custom_object(
             GROUP, VERSION, PLURAL, repo("py-a", "https://a.example")))
    both("replace py-a with a stale resourceVersion (409 Conflict)",
         lambda a, _: a.replace_cluster_custom_object(
             GROUP, VERSION, PLURAL, "py-a", repo("py-a", "https://a3.example", {}, rv)))

    # Reads after the writes (read-your-own-writes through the relay).
    both("get py-a", lambda a, _: a.get_cluster_custom_object(GROUP, VERSION, PLURAL, "py-a"))
    both("list team=py", lambda a, _: list_items(a, label_selector="team=py"))
    both("list, 2 at a time", lambda a, _: all_pages(a, 2))

    # Watches resumed from the list's resourceVersion, and from an event's.
    both("watch from the list's resourceVersion", lambda a, _: watch_from(a, start[id(a)], 5))
    first = watch_from(r_api, start[id(r_api)], 1)
    after = first[0]["object"]["metadata"]["resourceVersion"] if first else "missing"
    steps.append({"name": "first event's resourceVersion (not compared)", "relay": after})
    both("watch from the first event's resourceVersion", lambda a, _: watch_from(a, after, 4))

    # exec through the relay's spliced WebSocket.
    both("exec echo",
         lambda _, c: stream(client.CoreV1Api(c).connect_get_namespaced_pod_exec, "web", "default",
                             command=["echo", "from", "python"], stderr=True, stdin=False,
                             stdout=True, tty=False))

    # Twenty more writes push the resume point out of both histories (16 events): 410 Expired.
    for i in range(20):
        r_api.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, "py-a", {"metadata": {"labels": {"round": str(i)}}})
    both("watch from outside the history (410 Expired)", lambda a, _: watch_from(a, start[id(a)], 1))

    print(json.dumps({"client": kubernetes.__version__, "steps": steps}))


if __name__ == "__main__":
    main()

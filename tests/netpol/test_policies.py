"""The chart's NetworkPolicies enforced on a real node (kube-router's policy controller): each case
is a real TCP connection from a real pod to a Service's ClusterIP, and every connection the
policies refuse opens once `networkPolicy.enabled=false` removes them. One release, upgraded
between the cases, in the order of this file."""
import json
import statistics

import pytest

from helpers.httping import PING_LINE, culprit
from helpers.kube import CHART
from helpers.node import RELEASE, Release
from localapp import wait_until

# Run in a pod: one TCP connect per HOST:PORT argument, all at once; prints "HOST:PORT open" or
# "HOST:PORT closed (why)". kube-router REJECTs (the connect fails at once); Calico DROPs (it
# times out): both are "closed".
PROBE = """
import socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return target + " open"
    except OSError as error:
        return f"{target} closed ({error})"
with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    print("\\n".join(pool.map(probe, sys.argv[1:])))
"""
SERVICES = ("rng", "hasher", "redis", "webui")
# Default policies: (source, service) -> open. The sources: a worker and a webui pod of the
# release, a debug pod beside them (`kubectl run`, as the workshop's httping), and a pod in
# another namespace.
DEFAULT = {
    ("worker", "rng"): True, ("worker", "hasher"): True, ("worker", "redis"): True,
    ("webui", "redis"): True,
    ("debug", "rng"): True, ("debug", "hasher"): True, ("debug", "redis"): False,
    ("debug", "webui"): True,
    ("other", "redis"): False, ("other", "webui"): True, ("other", "rng"): True,
}
STRICT = {**DEFAULT, ("debug", "rng"): False, ("debug", "hasher"): False,
          ("other", "rng"): False}
DISABLED = {case: True for case in DEFAULT}


@pytest.fixture(scope="module")
def release(node_cluster):
    """The chart with its default values (policies on), plus the two pods of no release: a debug
    pod in its namespace and one in another namespace, both with the workshop's httping image."""
    release = Release(node_cluster, node_cluster.new_namespace("np"))
    release.install()
    other = node_cluster.new_namespace("np-other")
    image = f"{node_cluster.registry}/dockercoins/httping:bookworm"
    for ns in (release.ns, other):
        node_cluster.kubectl("-n", ns, "run", "debug", f"--image={image}", "--restart=Never",
                             "--", "sleep", "3600")
        node_cluster.kubectl("-n", ns, "wait", "pod/debug", "--for=condition=Ready",
                             "--timeout=120s", timeout=150)
    release.other_ns = other
    yield release
    node_cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
    release.uninstall()


def addresses(release):
    """{service: "clusterIP:port"} of the release's Services."""
    services = release.cluster.get("services", "-n", release.ns)["items"]
    return {s["metadata"]["name"]: f"{s['spec']['clusterIP']}:{s['spec']['ports'][0]['port']}"
            for s in services if s["metadata"]["name"] in SERVICES}


def source_pod(release, source):
    """(namespace, pod name) of the pod a case connects from."""
    if source == "debug":
        return release.ns, "debug"
    if source == "other":
        return release.other_ns, "debug"
    return release.ns, release.ready_pods(source)[0]["metadata"]["name"]


def reachability(release, cases):
    """{(source, service): open?} for the cases, with each probe's line for failures."""
    targets = addresses(release)
    found, lines = {}, []
    for source in sorted({s for s, _ in cases}):
        ns, pod = source_pod(release, source)
        wanted = [targets[service] for s, service in cases if s == source]
        out = release.cluster.kubectl("-n", ns, "exec", pod, "--", "python3", "-c", PROBE,
                                      *wanted, timeout=60)
        by_target = dict(line.split(" ", 1) for line in out.splitlines())
        for s, service in cases:
            if s == source:
                found[(s, service)] = by_target[targets[service]] == "open"
                lines.append(f"{source} -> {service}: {by_target[targets[service]]}")
    return found, lines


def assert_reachability(release, expected, timeout=60):
    """Waits until the probes match `expected` (kube-router applies a changed policy within
    seconds), then fails with every probe's outcome if they never do."""
    last = {}

    def matches():
        last["found"], last["lines"] = reachability(release, expected)
        return last["found"] == expected
    try:
        wait_until(matches, timeout, "the expected reachability", interval=2)
    except TimeoutError:
        wrong = {k: v for k, v in last["found"].items() if expected[k] != v}
        raise AssertionError(f"not as expected: {wrong}\n" + "\n".join(last["lines"])) from None


def upgrade(release, *sets):
    release.helm("upgrade", RELEASE, CHART, "-f", release.cluster.values_file, "--wait",
                 "--timeout", "3m", *(arg for s in sets for arg in ("--set", s)))


def test_default_policies(release):
    """worker -> rng, hasher, redis and webui -> redis open; redis closed to the debug pod and to
    another namespace; rng, hasher and webui open to any pod."""
    assert_reachability(release, DEFAULT)


def test_httping_from_a_pod_finds_rng_with_policies(release):
    """The workshop's culprit hunt, from a pod, with the policies enforced: with 10 workers on one
    rng, httping on the two ClusterIPs singles out rng."""
    release.scale("worker", 10)
    try:
        targets = addresses(release)
        latencies = {}
        for service in ("rng", "hasher"):
            out = release.kubectl("exec", "debug", "--", "httping", "-c", "3",
                                  f"http://{targets[service]}/", timeout=90)
            latencies[service] = statistics.median(float(ms) / 1000 for ms in PING_LINE.findall(out))
        assert culprit(latencies) == "rng", latencies
    finally:
        release.scale("worker", 1)


def test_strict_mode(release):
    """networkPolicy.strict=true: rng and hasher only from the worker (and helm test pods)."""
    upgrade(release, "networkPolicy.strict=true")
    assert_reachability(release, STRICT)


def test_disabled_opens_everything(release):
    """networkPolicy.enabled=false: no policy, so every connection refused above opens (they were
    refused by the policies, not by a missing listener)."""
    upgrade(release, "networkPolicy.enabled=false")
    policies = json.loads(release.kubectl("get", "networkpolicies", "-o", "json"))["items"]
    assert policies == []
    assert_reachability(release, DISABLED)

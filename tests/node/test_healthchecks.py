"""The healthchecks chapter on a real node, as docs/workshop.md types it, with the kubelet's own
probes: a liveness probe failed on purpose restarts rng's container (its restart count rises, and
the new one is healthy); a readiness probe failed on purpose takes one of two hasher pods out of
the Service's EndpointSlice while it keeps running, and back in when enabled; and with
FAILURE_RATE=0.2 on hasher the workers ride through, counting exactly (redis `hashes` is the sum of
their counts once they are gone), while their errors metric shows the failures.

The tests of this module share one release and run in order."""
import json
import re

import pytest

from helpers.node import Release, final_totals
from localapp import wait_until

POST = ("import sys, urllib.request; print(urllib.request.urlopen(urllib.request.Request("
        "'http://127.0.0.1:8080' + sys.argv[1], method='POST'), timeout=5).read().decode())")


@pytest.fixture(scope="module")
def app(node_cluster):
    release = Release(node_cluster, node_cluster.new_namespace("health"))
    release.install("--set", "worker.replicaCount=2", "--set", "hasher.replicaCount=2")
    yield release
    release.uninstall()


def post_in_pod(release, pod, path):
    """POST to the pod's own port, from inside it (`kubectl exec`: the images carry python3)."""
    return json.loads(release.kubectl("exec", pod, "--", "python3", "-c", POST, path))


def container_status(release, pod):
    return release.cluster.get("-n", release.ns, "pod", pod)["status"]["containerStatuses"][0]


def endpoints(release, service):
    """{pod name: ready} of the Service's EndpointSlices."""
    slices = release.cluster.get("-n", release.ns, "endpointslices", "-l",
                                 f"kubernetes.io/service-name={service}")["items"]
    return {e["targetRef"]["name"]: bool(e["conditions"].get("ready"))
            for s in slices for e in s.get("endpoints") or []}


def test_a_failing_liveness_probe_restarts_the_container(app):
    pod = app.ready_pods("rng")[0]["metadata"]["name"]
    assert container_status(app, pod)["restartCount"] == 0
    answer = post_in_pod(app, pod, "/healthz/disable")
    assert "healthz disabled" in answer["status"], answer
    # 3 failures 10 s apart (the chart's liveness probe), then the kubelet restarts it.
    wait_until(lambda: container_status(app, pod)["restartCount"] >= 1, 120,
               f"{pod} restarted by its liveness probe")
    wait_until(lambda: container_status(app, pod)["ready"], 60, f"{pod} Ready again")
    # The same pod, a new container: its switches start enabled, and it is healthy.
    status = container_status(app, pod)
    assert status["restartCount"] == 1 and status["lastState"]["terminated"], status
    health = json.loads(app.raw(f"/api/v1/namespaces/{app.ns}/pods/{pod}:8080/proxy/healthz"))
    assert health == {"status": "ok"}
    events = app.kubectl("get", "events", "--field-selector", f"involvedObject.name={pod}")
    assert "Liveness probe failed: HTTP probe failed with statuscode: 503" in events, events


def test_a_failing_readiness_probe_takes_the_pod_out_of_its_service(app):
    pods = sorted(p["metadata"]["name"] for p in app.ready_pods("hasher"))
    assert len(pods) == 2 and endpoints(app, "hasher") == dict.fromkeys(pods, True)
    out, kept = pods
    post_in_pod(app, out, "/readyz/disable")
    wait_until(lambda: endpoints(app, "hasher") == {out: False, kept: True}, 60,
               f"{out} not ready in the hasher EndpointSlice")
    status = container_status(app, out)
    # Out of the Service, but still running: readiness never restarts a pod.
    assert status["state"].get("running") and status["restartCount"] == 0, status
    post_in_pod(app, out, "/readyz/enable")
    wait_until(lambda: endpoints(app, "hasher") == {out: True, kept: True}, 60,
               f"{out} back in the hasher EndpointSlice")


def errors_by_stage(app, pod):
    text = app.raw(f"/api/v1/namespaces/{app.ns}/pods/{pod}:8080/proxy/metrics")
    return {stage: float(value) for stage, value in re.findall(
        r'^dockercoins_worker_errors_total\{stage="(\w+)"\} (\S+)$', text, re.M)}


def test_the_workers_ride_through_a_failure_rate_counting_exactly(app):
    # Every worker so far stopped and flushed: what redis holds now is theirs.
    app.stop_all_workers()
    base = int(app.redis("GET", "hashes"))
    app.kubectl("set", "env", "deployment/hasher", "FAILURE_RATE=0.2")
    app.kubectl("rollout", "status", "deployment/hasher", "--timeout=180s", timeout=210)
    app.scale("worker", 2)
    workers = [p["metadata"]["name"] for p in app.pods("worker")]
    followers = app.follow_logs(workers)   # from each one's start: its final count at the end
    wait_until(lambda: int(app.redis("GET", "hashes")) >= base + 60, 120,
               "60 hashes through hasher's 500s")
    errors = {pod: errors_by_stage(app, pod) for pod in workers}
    app.stop_all_workers()
    totals = final_totals(app, followers)
    assert int(app.redis("GET", "hashes")) == base + sum(totals.values()), (base, totals)
    # A fifth of the hashes failed at least once, and the retries absorbed them.
    assert all(e["hasher"] > 0 for e in errors.values()), errors
    assert all(e["rng"] == 0 and e["redis"] == 0 for e in errors.values()), errors

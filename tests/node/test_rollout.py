"""The rollout chapter on a real node, as docs/workshop.md types it: three workers (on two rngs, so
rng's cap is not the limit), then `kubectl set env deployment/worker WORKER_SLEEP_SECONDS=1`
rolled out pod by pod, the speed falling to the new loop time's share, `kubectl rollout history`
telling the two versions apart, and `kubectl rollout undo` bringing the speed back. The
dashboard's speed stays true to the slope of redis `hashes` throughout."""
import re
import threading

import pytest

from helpers.node import Release, steady_speed

WORKERS = 3
CALLS_SECONDS = 0.2          # one rng call and one hash, 0.1 s each: the rest of a loop
NOMINAL_RATIO = (0.1 + CALLS_SECONDS) / (1.0 + CALLS_SECONDS)   # 1/4


@pytest.fixture(scope="module")
def mining(node_cluster):
    release = Release(node_cluster, node_cluster.new_namespace("rollout"))
    release.install("--set", f"worker.replicaCount={WORKERS}", "--set", "rng.replicaCount=2")
    yield release
    release.uninstall()


def roll(release, *change, cause=None):
    """One version of the worker, as the chapter types it: the change, its change-cause, then
    `kubectl rollout status` until every new pod is Ready. Returns what was sampled meanwhile:
    [{replica set: ready pods}], every half second."""
    if change:
        release.kubectl(*change)
    if cause:
        release.kubectl("annotate", "deployment/worker", f"kubernetes.io/change-cause={cause}",
                        "--overwrite")
    samples, done = [], threading.Event()

    def sample():
        while not done.wait(0.5):
            sets = release.cluster.get("-n", release.ns, "replicasets", "-l",
                                       "app.kubernetes.io/component=worker")["items"]
            samples.append({rs["metadata"]["name"]: rs["status"].get("readyReplicas", 0)
                            for rs in sets})
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        release.kubectl("rollout", "status", "deployment/worker", "--timeout=240s", timeout=270)
    finally:
        done.set()
        sampler.join()
    return samples


def assert_pod_by_pod(samples, new, old):
    """Never all pods replaced at once: while the new ReplicaSet grew, old and new pods were
    ready side by side, with the new one part of the way (maxSurge 1), and there were never
    fewer than WORKERS ready pods in all (maxUnavailable 0). (The Deployment's events cannot
    tell: after ten ScalingReplicaSet events the controller merges the next ones into one.)"""
    steps = [(s.get(old, 0), s.get(new, 0)) for s in samples]
    assert any(0 < n < WORKERS and o > 0 for o, n in steps), steps
    assert min(o + n for o, n in steps) >= WORKERS, steps


def current_replica_set(release):
    sets = release.cluster.get("-n", release.ns, "replicasets", "-l",
                               "app.kubernetes.io/component=worker")["items"]
    return max(sets, key=lambda rs: int(rs["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"]))["metadata"]["name"]


def assert_dashboard_true(release, true_rate):
    """webui's /json speed, read now (steady state), within 10% of the slope just measured."""
    shown = release.json()["speed"]
    assert shown == pytest.approx(true_rate, rel=0.10), (shown, true_rate)


def test_a_slower_version_rolls_out_pod_by_pod_and_undo_brings_the_speed_back(mining):
    release = mining
    roll(release, cause="WORKER_SLEEP_SECONDS=0.1 (the chart's default)")
    first = current_replica_set(release)
    before = steady_speed(release)
    assert_dashboard_true(release, before)

    samples = roll(release, "set", "env", "deployment/worker", "WORKER_SLEEP_SECONDS=1",
                   cause="WORKER_SLEEP_SECONDS=1 (a slower worker)")
    slow = current_replica_set(release)
    assert slow != first
    assert_pod_by_pod(samples, new=slow, old=first)
    after = steady_speed(release, seconds=20.0, settle=8.0)
    # The speed follows the loop time, which the new sleep makes 0.9 s longer. Nominally
    # (0.1 + 0.2) / (1 + 0.2) = 1/4; the loop measured before (W / speed) includes what rng
    # and hasher really took on this busy node, so the ratio is computed from it.
    loop_before = WORKERS / before
    expected = loop_before / (loop_before + 1.0 - 0.1)
    assert 0.9 * NOMINAL_RATIO <= expected < 0.4, (before, "rng and hasher far from 0.1 s")
    assert after / before == pytest.approx(expected, rel=0.15), (before, after, expected)
    assert_dashboard_true(release, after)

    history = release.kubectl("rollout", "history", "deployment/worker")
    assert re.search(r"^1\s+WORKER_SLEEP_SECONDS=0\.1 \(the chart's default\)$", history, re.M)
    assert re.search(r"^2\s+WORKER_SLEEP_SECONDS=1 \(a slower worker\)$", history, re.M), history

    samples = roll(release, "rollout", "undo", "deployment/worker")
    assert current_replica_set(release) == first     # undo brings back the first template
    assert_pod_by_pod(samples, new=first, old=slow)
    back = steady_speed(release)
    assert back / before == pytest.approx(1.0, rel=0.15), (before, back)
    assert_dashboard_true(release, back)

"""Faults on a real node, one at a time, with three workers mining and redis persistence on:
`kubectl delete pod --grace-period=0 --force` of rng, then hasher, then redis. After each, mining
resumes within 5 s of the replacement becoming Ready, the wallet keeps its coins, and in the end
redis `hashes` is exactly what the workers counted: nothing lost, nothing counted twice."""
import time

import pytest

from helpers.node import Release, final_totals
from localapp import wait_until

RESUME_SECONDS = 5.0


@pytest.fixture(scope="module")
def mining(node_cluster):
    release = Release(node_cluster, node_cluster.new_namespace("faults"))
    release.install("--set", "worker.replicaCount=3", "--set", "redis.persistence.enabled=true")
    # Every worker's log from its start, for its final count at the end.
    followers = release.follow_logs([p["metadata"]["name"] for p in release.pods("worker")])
    wait_until(lambda: int(release.redis("HLEN", "wallet")) >= 2, 120, "two coins in the wallet")
    yield release, followers
    release.uninstall()


def hashes_or_none(release):
    try:
        return release.json()["hashes"]
    except Exception:   # webui answers 503 while redis is away, or the proxy finds no endpoint
        return None


def replace_pod(release, name):
    """Force-delete the one pod of NAME; return when its replacement is Ready."""
    old = release.ready_pods(name)[0]["metadata"]["name"]
    release.kubectl("delete", "pod", old, "--grace-period=0", "--force")

    def replacement():
        pods = [p for p in release.ready_pods(name) if p["metadata"]["name"] != old]
        return pods and pods[0]["metadata"]["name"]
    return wait_until(replacement, 180, f"a new Ready {name} pod")


@pytest.mark.parametrize("name", ["rng", "hasher", "redis"])
def test_mining_resumes_after_a_forced_delete(mining, name):
    release, _ = mining
    coins = int(release.redis("HLEN", "wallet"))
    replace_pod(release, name)
    ready_at = time.monotonic()
    start = wait_until(lambda: hashes_or_none(release), 30, "webui's /json")
    grown = wait_until(lambda: (hashes_or_none(release) or 0) > start, 30, "hashes growing again")
    resumed_after = time.monotonic() - ready_at
    assert grown and resumed_after < RESUME_SECONDS, f"resumed {resumed_after:.1f} s after Ready"
    # redis kept its append-only file on the volume: no coin is lost.
    assert int(release.redis("HLEN", "wallet")) >= coins


def test_hashes_equal_what_the_workers_counted(mining):
    release, followers = mining
    release.stop_all_workers()
    totals = final_totals(release, followers)
    assert len(totals) == 3
    assert int(release.redis("GET", "hashes")) == sum(totals.values()), totals

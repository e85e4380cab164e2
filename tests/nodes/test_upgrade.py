"""`helm upgrade` with a new image tag under load, as LKE's node recycle rolls every pod: with 2
webui and 2 hasher replicas, rng as a DaemonSet and 6 workers mining, webui's `/json` polled 5 times
a second through its Service (by a pod on node 1, by name, so node 1's kube-proxy picks the
webui pod) answers 200 every time: 0 5xx and no refused connection."""
import json
import time

import pytest

from helpers import figures
from helpers.node import SPREAD_WORKERS, Release, steady_speed
from localapp import SERVICES, wait_until
from dockercoins_lab.scaling import random_balancing

POLL_SECONDS = 0.2
# The poller, in a pod: GET http://webui/json every POLL_SECONDS, one HTTP code a line (0: no
# answer within 2 s, or a refused connection), then what went wrong, if anything: the answer's
# `error` or the exception.
POLL = f"""
import time, urllib.error, urllib.request
end = time.monotonic() + 600
while time.monotonic() < end:
    try:
        code, why = urllib.request.urlopen("http://webui/json", timeout=2).status, ""
    except urllib.error.HTTPError as error:
        code, why = error.code, error.read()[:300].decode(errors="replace")
    except Exception as error:
        code, why = 0, repr(error)
    print(code, time.strftime("%H:%M:%S"), why.replace(chr(10), " "), flush=True)
    time.sleep({POLL_SECONDS})
"""


@pytest.fixture(scope="module")
def app(nodes_cluster):
    release = Release(nodes_cluster, nodes_cluster.new_namespace("upgrade"))
    release.install("--set", "rng.kind=DaemonSet", "--set", "worker.replicaCount=6",
                    *SPREAD_WORKERS,
                    "--set", "hasher.replicaCount=2", "--set", "webui.replicaCount=2")
    yield release
    release.uninstall()


def start_poller(app):
    """The poller pod (the httping image, which has python3), on node 1, Running."""
    app.cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "poller", "namespace": app.ns},
        "spec": {"nodeName": "dockercoins-node-1", "restartPolicy": "Never",
                 "containers": [{
                     "name": "poller", "command": ["python3", "-c", POLL],
                     "image": f"{app.cluster.registry}/dockercoins/httping:bookworm"}]}}))
    wait_until(lambda: app.cluster.get("pod", "-n", app.ns, "poller")["status"]["phase"]
               == "Running", 60, "the poller running")


def test_an_image_upgrade_under_load_answers_200_throughout(app):
    old = (app.cluster.dir / "node" / "image-tag").read_text().strip()
    new = f"{old}-next"
    app.cluster.publish_images(new)
    start_poller(app)
    time.sleep(3)
    started = time.monotonic()
    app.helm("upgrade", "dockercoins", "charts/dockercoins", "--reuse-values",
             "--set", f"global.image.tag={new}", "--wait", "--timeout", "5m", timeout=360)
    for name in ("hasher", "webui", "worker"):
        app.kubectl("rollout", "status", f"deployment/{name}", "--timeout=180s", timeout=200)
    app.kubectl("rollout", "status", "daemonset/rng", "--timeout=180s", timeout=200)
    figures.record("node", "upgrade_rollout_seconds", round(time.monotonic() - started, 1))
    time.sleep(3)
    answers = app.kubectl("logs", "poller").splitlines()
    codes = [line.split()[0] for line in answers]
    app.kubectl("delete", "pod", "poller", "--wait=false")
    seconds = time.monotonic() - started
    figures.record("node", "upgrade_json_answers",
                   {code: codes.count(code) for code in sorted(set(codes))})
    assert len(codes) >= 0.5 * (seconds + 3) / POLL_SECONDS, len(codes)
    assert [line for line in answers if line.startswith("5")] == []
    assert set(codes) == {"200"}, [line for line in answers if not line.startswith("200")]
    # Every app pod now runs the new tag, and mining goes on.
    for name in SERVICES:
        wanted = {f"{app.cluster.registry}/dockercoins/{name}:{new}"}
        wait_until(lambda: {p["spec"]["containers"][0]["image"] for p in app.pods(name)} == wanted,
                   60, f"only {name} pods of the new tag (the old ones gone)")
    assert steady_speed(app, settle=5, seconds=10) >= 0.7 * random_balancing(6, 3)

"""Helpers for tests against the real control plane of ci/cluster.sh: helm and kubectl as
subprocesses (the real binaries from .tools/bin), and waits on what the server reports."""
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from helpers import figures
from localapp import COMPONENTS, ROOT, wait_until

CHART = ROOT / "charts" / "dockercoins"
TOOLS_BIN = ROOT / ".tools" / "bin"
CLUSTER_SH = ROOT / "ci" / "cluster.sh"
# The lab's command, as `pip install` made it in the venv that runs the tests (ci/lib.sh's
# ensure_venv installs the project, editable).
LAB = Path(sys.executable).parent / "dockercoins-lab"
# The CRDs the chart can use (ServiceMonitor, PodMonitor), as the prometheus-operator has them.
CRDS = ROOT / "tests" / "cluster" / "crds"
NODES = 3
# The names the chart gives its objects (namePrefix empty).
DEPLOYMENTS = COMPONENTS
SERVICES = ("rng", "hasher", "redis", "webui")


class Failed(Exception):
    """A command exited non-zero; the message holds its output."""

    def __init__(self, argv, proc):
        self.returncode = proc.returncode
        self.output = proc.stdout + proc.stderr
        super().__init__(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{self.output}")


class Cluster:
    """One control plane started by `ci/cluster.sh up` in its own directory."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.kubeconfig = self.dir / "kubeconfig"
        self.env = {**os.environ, "CLUSTER_DIR": str(self.dir), "KUBECONFIG": str(self.kubeconfig),
                    "PATH": f"{TOOLS_BIN}:{os.environ['PATH']}",
                    # helm keeps its cache and config in the test's directory, not in $HOME.
                    "HELM_CACHE_HOME": str(self.dir / "helm" / "cache"),
                    "HELM_CONFIG_HOME": str(self.dir / "helm" / "config"),
                    "HELM_DATA_HOME": str(self.dir / "helm" / "data")}

    def script(self, *args, timeout=1800):
        """ci/cluster.sh ARGS (up, up --node, down, ...) for this cluster's directory."""
        return self.run([str(CLUSTER_SH), *args], timeout=timeout)

    def run(self, argv, check=True, timeout=300, input=None):
        proc = subprocess.run([str(a) for a in argv], env=self.env, cwd=ROOT, text=True,
                              capture_output=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise Failed(argv, proc)
        return proc

    def kubectl(self, *args, **kw):
        return self.run(["kubectl", *args], **kw).stdout

    def helm(self, *args, **kw):
        return self.run(["helm", *args], **kw).stdout

    def get(self, *args):
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, manifest, *args):
        return self.kubectl("apply", *args, "-f", "-", input=manifest)

    def wait_established(self, *names, timeout=60):
        """Wait until each CRD in `names` (none: every CRD) has Established=True.

        Not `kubectl wait --for=condition=Established`: a CRD the server has just created shows
        `status.conditions: null` until its controller's first update, and kubectl wait then
        fails at once ("accessor error: <nil> is of the type <nil>") instead of waiting.
        Raises TimeoutError after `timeout` seconds."""
        def established():
            listed = self.get("crd", *names)
            return all(any(c["type"] == "Established" and c["status"] == "True"
                           for c in (crd.get("status") or {}).get("conditions") or [])
                       for crd in listed.get("items", [listed]))
        wait_until(established, timeout, f"CRDs {names or 'all'} Established", interval=0.5)

    def new_namespace(self, prefix="t"):
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        return name

    def pods(self, namespace, selector):
        return self.get("pods", "-n", namespace, "-l", selector)["items"]

    def running_ready_pods(self, namespace, selector):
        return [p for p in self.pods(namespace, selector)
                if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
                and any(c["type"] == "Ready" and c["status"] == "True"
                        for c in p["status"].get("conditions", []))]


def component(name):
    """The label selector of one component's pods, as the chart writes it."""
    return f"app.kubernetes.io/component={name}"


# No provisioner runs here, so volumes are made by hand (make_volume) and bound by the scheduler
# when the pod is placed, as WaitForFirstConsumer classes work on real clusters.
DEFAULT_STORAGE_CLASS = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
"""


def run_lab(env, *args, timeout=300):
    """`dockercoins-lab` as a user runs it, with ENV: (exit status, stdout, stderr)."""
    proc = subprocess.run([str(LAB), *map(str, args)],
                          env=env, text=True, capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@contextlib.contextmanager
def started_cluster(directory, extras=True):
    """`ci/cluster.sh up` in `directory` (building the binaries if `ci/cluster.sh build` has not),
    then `down` whatever happens. With extras, the CRDs the chart can use are installed as on a
    real cluster with the prometheus-operator, and a default StorageClass stands for the
    cloud's. Yields the Cluster; its start-up time is a figure."""
    cluster = Cluster(directory)
    started = time.monotonic()
    try:
        cluster.script("up")
        figures.append("cluster", "cluster_up_seconds", round(time.monotonic() - started, 1))
        if extras:
            for crd in sorted(CRDS.glob("*.yaml")):
                cluster.kubectl("apply", "--server-side", "-f", crd)
            cluster.wait_established()
            cluster.apply(DEFAULT_STORAGE_CLASS)
        yield cluster
    finally:
        cluster.script("down")


def namespace_for_test(cluster, prefix="t"):
    """A fresh namespace, deleted (without waiting) after the test: a fixture's body."""
    name = cluster.new_namespace(prefix)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def make_volume(cluster, size="10Gi"):
    """A PersistentVolume of the default class, for one claim. Nothing mounts it: kwok runs no pod."""
    name = f"pv-{uuid.uuid4().hex[:8]}"
    cluster.apply(f"""
apiVersion: v1
kind: PersistentVolume
metadata:
  name: {name}
spec:
  capacity:
    storage: {size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  hostPath:
    path: /tmp/{name}
""")
    return name

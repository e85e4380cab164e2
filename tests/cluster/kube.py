"""Helpers for tests against the real control plane of ci/cluster.sh: helm and kubectl as
subprocesses (the real binaries from .tools/bin), and waits on what the server reports."""
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "dockercoins"
TOOLS_BIN = ROOT / ".tools" / "bin"
CLUSTER_SH = ROOT / "ci" / "cluster.sh"
NODES = 3
# The names the chart gives its objects (namePrefix empty).
DEPLOYMENTS = ("rng", "hasher", "worker", "webui", "redis")
SERVICES = ("rng", "hasher", "redis", "webui")
FIGURES = {}


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

    def script(self, action, timeout=1800):
        return self.run([str(CLUSTER_SH), action], timeout=timeout)

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


def wait_until(predicate, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


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

"""Helpers for the tests on the real node of `ci/cluster.sh up --node`: the release under test, the
app's numbers read through the API server (service and pod proxies), and what the host looks like
before `up` and after `down`."""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from helpers import kube
from helpers.kube import CHART, component
from localapp import counter_slope, wait_until

RELEASE = "dockercoins"
FIGURES = {}
WORKER_TOTAL = re.compile(r"final flush done: (\d+) loops in all")


class NodeCluster(kube.Cluster):
    """The control plane plus the real node, in its own CLUSTER_DIR."""

    @property
    def values_file(self):
        """The values `up --node` wrote: the images in the node's loopback registry."""
        return self.dir / "node-values.yaml"

    @property
    def registry(self):
        """host:port of the node's loopback registry, which containerd pulls from."""
        return (self.dir / "node" / "registry-address").read_text().strip()

    # What tests/cluster/test_pipeline_deploy.py asks of a cluster that runs pods.
    @property
    def pipeline_variables(self):
        return {"REGISTRY": f"{self.registry}/dockercoins", "CLUSTER_VALUES": str(self.values_file)}

    def publish_images(self, tag):
        """The four app images of this checkout, pushed again under TAG (a commit's short SHA),
        as the pipeline's build jobs would have pushed that commit's images."""
        built = (self.dir / "node" / "image-tag").read_text().strip()
        for service in ("rng", "hasher", "worker", "webui"):
            self.run(["buildah", "push", "--quiet", "--tls-verify=false",
                      f"localhost/dockercoins/{service}:{built}",
                      f"docker://{self.registry}/dockercoins/{service}:{tag}"], timeout=300)


class Release:
    """The chart installed in one namespace of the node cluster."""

    def __init__(self, cluster, namespace):
        self.cluster = cluster
        self.ns = namespace

    def helm(self, *args, **kw):
        return self.cluster.helm("-n", self.ns, *args, **kw)

    def kubectl(self, *args, **kw):
        # -n first: anything after `--` (kubectl exec) belongs to the command.
        return self.cluster.kubectl("-n", self.ns, *args, **kw)

    def install(self, *args):
        started = time.monotonic()
        self.helm("install", RELEASE, CHART, "-f", self.cluster.values_file, "--wait",
                  "--timeout", "5m", *args)
        FIGURES.setdefault("helm_install_wait_seconds", []).append(
            round(time.monotonic() - started, 1))

    def uninstall(self):
        self.helm("uninstall", RELEASE, "--wait", "--timeout", "2m", check=False)
        self.cluster.kubectl("delete", "namespace", self.ns, "--wait=false", check=False)

    # --- what the API server reports ---------------------------------------------------------
    def pods(self, name):
        return self.cluster.pods(self.ns, component(name))

    def ready_pods(self, name):
        return self.cluster.running_ready_pods(self.ns, component(name))

    def scale(self, name, replicas, timeout=180):
        """`kubectl scale deployment NAME --replicas=N`, then wait until exactly N are Ready."""
        self.kubectl("scale", "deployment", name, f"--replicas={replicas}")
        self.kubectl("rollout", "status", f"deployment/{name}", f"--timeout={timeout}s",
                     timeout=timeout + 30)
        wait_until(lambda: len(self.pods(name)) == replicas, timeout,
                   f"{replicas} {name} pods (terminated ones gone)")

    def redis(self, *command):
        """A redis-cli command run in the redis pod: its raw answer."""
        return self.kubectl("exec", "deploy/redis", "--", "redis-cli", *command).strip()

    # --- the app's numbers, through the API server's proxies ---------------------------------
    def raw(self, path):
        return self.cluster.kubectl("get", "--raw", path, timeout=30)

    def json(self):
        """webui's /json through the API server's service proxy."""
        return json.loads(self.raw(f"/api/v1/namespaces/{self.ns}/services/webui:80/proxy/json"))

    def speed(self, seconds=15.0):
        """Hashes/s: the slope of redis `hashes` (as webui's /json reads it) over a window."""
        return counter_slope(lambda: self.json()["hashes"], seconds, interval=0.5)

    def worker_loops(self, pod):
        """dockercoins_worker_hashes_total of one worker pod, from its /metrics (pod proxy)."""
        text = self.raw(f"/api/v1/namespaces/{self.ns}/pods/{pod}:8080/proxy/metrics")
        match = re.search(r"^dockercoins_worker_hashes_total(?:\{[^}]*\})? (\S+)$", text, re.M)
        return int(float(match.group(1)))

    def follow_logs(self, pods):
        """`kubectl logs -f` of each pod, so their last lines are kept after the pods are gone."""
        return {pod: subprocess.Popen(
            ["kubectl", "-n", self.ns, "logs", "-f", pod], env=self.cluster.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for pod in pods}

    def stop_all_workers(self):
        """Scale the worker to 0 and return the loops each worker pod logged at its final flush
        (the log of every worker that ever ran here must be followed by the caller before)."""
        self.kubectl("scale", "deployment", "worker", "--replicas=0")
        wait_until(lambda: not self.pods("worker"), 120, "every worker pod gone")


def installed_release(cluster, prefix):
    """The chart installed in a fresh namespace named from prefix, uninstalled after: a
    fixture's body."""
    release = Release(cluster, cluster.new_namespace(prefix))
    release.install()
    yield release
    release.uninstall()


def final_totals(followers, timeout=60):
    """{pod: loops} from each followed log's 'final flush done' line."""
    totals = {}
    for pod, proc in followers.items():
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        match = WORKER_TOTAL.search(out)
        assert match, f"{pod} logged no final flush:\n{out[-2000:]}"
        totals[pod] = int(match.group(1))
    return totals


def steady_speed(release, seconds=15.0, settle=6.0):
    """The speed once the last change has settled (the workers' first loops, the flushes)."""
    time.sleep(settle)
    return release.speed(seconds)


# --- the host, before `up` and after `down` ------------------------------------------------------
def host_state():
    """What `up --node` changes on this machine: interfaces, firewall chains and FORWARD rules,
    mounts, the kubelet's cgroups, forwarding sysctls, and node processes."""
    def run(*argv):
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    def chains(family, table):
        return {f"{family} {table} {line.split()[0][1:]}"
                for line in run(f"{family}-save", "-t", table).splitlines() if line.startswith(":")}

    def rules(family, table):
        return {f"{family} {table} {line}" for line in run(family, "-t", table, "-S").splitlines()}

    tables = [(family, table) for family in ("iptables", "ip6tables")
              for table in ("filter", "nat", "mangle")]
    return {
        "links": set(re.findall(r"^\d+: ([^:@]+)", run("ip", "-o", "link", "show"), re.M)),
        "firewall chains": set().union(*(chains(*t) for t in tables)),
        "firewall rules": set().union(*(rules(*t) for t in tables)),
        "mounts": set(run("findmnt", "-rn", "-o", "TARGET").splitlines()),
        "cgroups": {str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")},
        "socket dirs": {str(p) for p in Path("/run").glob("dockercoins-node-*")},
        "sysctls": {name: Path(f"/proc/sys/{name}").read_text().strip() for name in
                    ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")},
        # kube-router's policy controller matches policies with ipsets (with --network-policy).
        "ipsets": set(run("ipset", "list", "-n").splitlines()) if shutil.which("ipset") else set(),
        "processes": {line for line in run("ps", "-eo", "args").splitlines()
                      if re.search(r"\b(kubelet|kube-proxy|kube-router|coredns|containerd|docker-registry)\b",
                                   line)
                      and "pytest" not in line},
    }


def leftovers(before, after):
    """What is in `after` and was not in `before` (or changed, for the sysctls)."""
    found = {}
    for key, now in after.items():
        if key == "sysctls":
            changed = {k: v for k, v in now.items() if before[key].get(k) != v}
            if changed:
                found[key] = changed
        elif now - before[key]:
            found[key] = sorted(now - before[key])
    return found

"""Helpers for the tests on the real node of `ci/cluster.sh up --node`: the release under test, the
app's numbers read through the API server (service and pod proxies), and what the host looks like
before `up` and after `down`."""
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from helpers import figures, kube
from helpers.kube import CHART, component
from localapp import ROOT, SERVICES, counter_slope, wait_until
from workshop import readme   # tests/workshop's parser of the docs' command blocks

RELEASE = "dockercoins"
# The nodes of `ci/cluster.sh up --nodes 3` (node 0 is the one of `up --node`).
NODE_NAMES = ["dockercoins-node", "dockercoins-node-1", "dockercoins-node-2"]
# helm arguments that spread the workers evenly over the nodes (at most one more on any node).
# nodeTaintsPolicy Honor: a cordoned or lost node (tainted) is no domain to spread over, or its 0
# workers would keep the evicted ones Pending.
SPREAD_WORKERS = ["--set", "worker.topologySpreadConstraints[0].maxSkew=1",
                  "--set", "worker.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
                  "--set", "worker.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
                  "--set", "worker.topologySpreadConstraints[0].nodeTaintsPolicy=Honor"]
WORKER_TOTAL = re.compile(r"final flush done: (\d+) loops in all")


class NodeCluster(kube.Cluster):
    """The control plane plus the real node, in its own CLUSTER_DIR."""

    def script(self, *args, timeout=1800):
        """ci/cluster.sh ARGS; once it is `down`, no later session fixture shares it (UP)."""
        try:
            return super().script(*args, timeout=timeout)
        finally:
            if args[:1] == ("down",) and self in UP:
                UP.remove(self)

    @property
    def values_file(self):
        """The values `up --node` wrote: the images in the node's loopback registry."""
        return self.dir / "node-values.yaml"

    @property
    def registry(self):
        """host:port of the node's loopback registry, which containerd pulls from."""
        return (self.dir / "node" / "registry-address").read_text().strip()

    # What helpers/pipeline_deploy.py's Pipeline asks of a cluster that runs pods.
    @property
    def pipeline_variables(self):
        return {"REGISTRY": f"{self.registry}/dockercoins", "CLUSTER_VALUES": str(self.values_file)}

    def publish_images(self, tag):
        """The four app images of this checkout, pushed again under TAG (a commit's short SHA),
        as the pipeline's build jobs would have pushed that commit's images."""
        built = (self.dir / "node" / "image-tag").read_text().strip()
        for service in SERVICES:
            self.run(["buildah", "push", "--quiet", "--tls-verify=false",
                      f"localhost/dockercoins/{service}:{built}",
                      f"docker://{self.registry}/dockercoins/{service}:{tag}"], timeout=300)


    def proxied_everywhere(self, cluster_ips):
        """Whether every node's kube-proxy has rules for each of these ClusterIPs, in the node's
        own network namespace (node 0: this machine's; node K: dcnodeK, see docs/node.md)."""
        for i in range(len(self.get("nodes")["items"])):
            enter = [] if i == 0 else ["nsenter", f"--net=/run/netns/dcnode{i}"]
            # Every table: a Service with no ready endpoint has its REJECT rule in filter.
            rules = subprocess.run([*enter, "iptables-save"], capture_output=True, text=True,
                                   check=True).stdout
            if any(f"-d {ip}/32 " not in rules for ip in cluster_ips):
                return False
        return True


class Release:
    """The chart installed in one namespace of the node cluster."""

    def __init__(self, cluster, namespace):
        self.cluster = cluster
        self.ns = namespace
        self.termination_messages = {}   # worker pod: its container's termination message
        self.pod_watch = None

    def helm(self, *args, **kw):
        return self.cluster.helm("-n", self.ns, *args, **kw)

    def kubectl(self, *args, **kw):
        # -n first: anything after `--` (kubectl exec) belongs to the command.
        return self.cluster.kubectl("-n", self.ns, *args, **kw)

    def install(self, *args):
        started = time.monotonic()
        self.helm("install", RELEASE, CHART, "-f", self.cluster.values_file, "--wait",
                  "--timeout", "5m", *args)
        figures.append("node", "helm_install_wait_seconds", round(time.monotonic() - started, 1))
        # A node's Ready condition says nothing of its kube-proxy: one cut off from the API server
        # relists only after its backoff (up to 30 s), and until then has no rules for these new
        # Services, so a pod there gets "Network is unreachable" for them (seen after a lost node).
        ips = [s["spec"]["clusterIP"] for s in self.cluster.get("services", "-n", self.ns)["items"]
               if s["spec"].get("clusterIP", "None") != "None"]
        wait_until(lambda: self.cluster.proxied_everywhere(ips), 90,
                   "every node's kube-proxy with rules for the release's Services")

    def uninstall(self):
        if self.pod_watch:
            self.pod_watch.kill()
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

    def post_in_pod(self, pod, path):
        """POST to the pod's own port 8080, from inside it (`kubectl exec`: the images carry
        python3): the probes' switches, /readyz/disable and the like. Returns the JSON answer."""
        return json.loads(self.kubectl("exec", pod, "--", "python3", "-c", (
            "import sys, urllib.request; print(urllib.request.urlopen(urllib.request.Request("
            "'http://127.0.0.1:8080' + sys.argv[1], method='POST'), timeout=5).read().decode())"),
            path))

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
        """`kubectl logs -f` of each pod, so their last lines are kept after the pods are gone;
        and from now on, the worker pods' termination messages (see final_totals)."""
        self.watch_termination_messages()
        return {pod: subprocess.Popen(
            ["kubectl", "-n", self.ns, "logs", "-f", pod], env=self.cluster.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for pod in pods}

    def watch_termination_messages(self):
        """`kubectl get pods --watch` of the worker pods, in a thread: each one's termination
        message, from the status the kubelet writes before the pod is deleted (the DELETED
        event carries it too)."""
        if self.pod_watch:
            return
        self.pod_watch = subprocess.Popen(
            ["kubectl", "-n", self.ns, "get", "pods", "-l", component("worker"), "--watch",
             "--output-watch-events", "-o", "json"], env=self.cluster.env,
            stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self.read_pod_events, args=(self.pod_watch.stdout,),
                         daemon=True).start()

    def read_pod_events(self, stream):
        decoder, buffer = json.JSONDecoder(), ""
        for line in stream:   # a pretty-printed JSON object per event
            buffer += line
            try:
                event, _ = decoder.raw_decode(buffer.strip())
            except ValueError:
                continue   # the object is not complete yet
            buffer = ""
            pod = event["object"]
            for status in pod.get("status", {}).get("containerStatuses") or []:
                message = status.get("state", {}).get("terminated", {}).get("message")
                if message:
                    self.termination_messages[pod["metadata"]["name"]] = message

    def stop_all_workers(self):
        """Scale the worker to 0 and wait until every worker pod is gone. It returns nothing: the
        caller takes the counts with final_totals, from the logs it followed before."""
        self.kubectl("scale", "deployment", "worker", "--replicas=0")
        wait_until(lambda: not self.pods("worker"), 120, "every worker pod gone")


class Watch:
    """While the body runs: redis `hashes` every 0.2 s (through webui's /json), and `kubectl logs
    -f` of every worker pod once its container runs, so a replaced pod's final flush is kept."""

    def __init__(self, release):
        self.release = release
        self.samples = []        # (monotonic time, hashes)
        self.followers = {}
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.poll_hashes),
                        threading.Thread(target=self.follow)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        for thread in self.threads:
            thread.join()

    def poll_hashes(self):
        while not self.done.wait(0.2):
            try:
                self.samples.append((time.monotonic(), self.release.json()["hashes"]))
            except Exception:
                pass   # a webui pod moving: the next sample tells

    def follow(self):
        while not self.done.wait(0.5):
            self.follow_new()

    def follow_new(self):
        for pod in self.release.pods("worker"):
            name = pod["metadata"]["name"]
            states = pod["status"].get("containerStatuses") or [{}]
            if name not in self.followers and "running" in states[0].get("state", {}):
                self.followers.update(self.release.follow_logs([name]))

    def longest_stop(self):
        """The longest time, in s, between two samples where `hashes` rose."""
        rises = [t for (t, h), (_, before) in zip(self.samples[1:], self.samples) if h > before]
        return max(b - a for a, b in zip(rises, rises[1:]))


def installed_release(cluster, prefix):
    """The chart installed in a fresh namespace named from prefix, uninstalled after: a
    fixture's body."""
    release = Release(cluster, cluster.new_namespace(prefix))
    release.install()
    yield release
    release.uninstall()


def final_totals(release, followers, timeout=60):
    """{pod: loops}: each worker pod's final count, from its termination message, which the
    kubelet keeps in the pod's status (the followed log's own 'final flush done' line, when it has
    one, must say the same). Not from the log alone: the kubelet stops following once the
    container has exited, and the runtime may not have written the last lines to the file yet."""
    totals = {}
    for pod, proc in followers.items():
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: pod in release.termination_messages, 30, "")
        message = release.termination_messages.get(pod, "")
        match = WORKER_TOTAL.search(message)
        assert match, f"{pod} has no final count as its termination message ({message!r}); " \
            f"its log:\n{out[-2000:]}"
        logged = WORKER_TOTAL.search(out)
        assert logged is None or logged.group(1) == match.group(1), (pod, message, logged)
        totals[pod] = int(match.group(1))
    return totals


def steady_speed(release, seconds=15.0, settle=6.0):
    """The speed once the last change has settled (the workers' first loops, the flushes)."""
    time.sleep(settle)
    return release.speed(seconds)


# --- the host, before `up` and after `down` ------------------------------------------------------
def host_state():
    """What `up --node` or `up --nodes N` changes on this machine: interfaces, network namespaces,
    routes, firewall chains and FORWARD rules, mounts, the kubelets' cgroups, forwarding sysctls,
    and node processes."""
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
        "cgroups": {str(p) for pattern in ("*/kubepods", "*/dockercoins-node*")
                    for p in Path("/sys/fs/cgroup").glob(pattern)},
        "network namespaces": set(run("ip", "netns", "list").split()),
        "routes": set(run("ip", "route", "show").splitlines()),
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


@contextlib.contextmanager
def block_as_typed(session_cluster, tmp_path, first_line, doc="docs/node.md"):
    """Runs the command block of `doc` that starts with `first_line` as typed, up to its last
    line, `ci/cluster.sh down`, in a cluster directory of its own under tmp_path (in place of the
    default .cluster/), after the session's cluster is down (one node cluster at a time). Yields
    (the block's finished process, its NodeCluster, still up); then runs the last line and checks
    that the machine is as before. AssertionError if the block fails."""
    session_cluster.script("down")   # a no-op when test_down_leaves_nothing already ran
    lines = readme.block_starting(first_line, doc).lines()
    assert lines[-1].startswith("ci/cluster.sh down")
    script = "\n".join(lines[:-1]).replace(".cluster/", f"{tmp_path / 'cluster'}/")
    cluster = NodeCluster(tmp_path / "cluster")
    env = {k: v for k, v in cluster.env.items() if k != "KUBECONFIG"}   # the block's eval sets it
    before = host_state()
    try:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield proc, cluster
    finally:
        cluster.script(*lines[-1].split("#")[0].split()[1:])   # ci/cluster.sh down
    assert leftovers(before, host_state()) == {}


def order_last(items, folder, last):
    """pytest_collection_modifyitems' body: the tests of `folder` named in `last` run after the
    folder's others, in that order (a `down`, then a block that needs the machine free)."""
    here = [i for i, item in enumerate(items) if Path(item.path).parent == folder]
    if here:
        mine = [items[i] for i in here]
        rest = [item for item in mine if item.name not in last]
        ordered = sorted((item for item in mine if item.name in last),
                         key=lambda item: last.index(item.name))
        items[here[0]:here[-1] + 1] = rest + ordered


# --- one node cluster at a time ------------------------------------------------------------------
UP = []   # the node clusters this session started and has not taken down yet


NODE_LOCK = Path("/tmp/dockercoins-node.lock")
_held = []


def hold_node_lock():
    """Take the machine-wide node lock (flock on NODE_LOCK, as `flock /tmp/dockercoins-node.lock
    ...` takes it) for the rest of this process, waiting while another run holds it: one node
    cluster per machine. Taken once per process, so tests/node and tests/nodes in one session
    do not wait on each other."""
    if _held:
        return
    lock = open(NODE_LOCK, "a")   # kept open: the lock lives as long as the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if lock_holder(NODE_LOCK) not in ancestors():   # `flock ... ci/test.sh` holds it for us
            fcntl.flock(lock, fcntl.LOCK_EX)
    _held.append(lock)


def lock_holder(path):
    """The pid holding a flock on PATH, from /proc/locks (`ID: FLOCK ADVISORY WRITE PID
    MAJ:MIN:INODE ...`), or None."""
    inode = path.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and int(fields[5].rsplit(":", 1)[1]) == inode:
            return int(fields[4])
    return None


def ancestors():
    """This process's parent, its parent, and so on up to pid 1."""
    pids, pid = set(), os.getppid()
    while pid > 1:
        pids.add(pid)
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return pids


def session_node_cluster(tmp_path_factory, name, *up_args, figure="up_to_node_ready_seconds"):
    """`ci/cluster.sh up UP_ARGS` in a directory of its own, then `down`: a session fixture's body.
    Only one node cluster may run on the machine, so another one this session started (the
    tests/node one, when tests/nodes runs after it) is taken down first, unless it was started
    with every one of UP_ARGS: then it is shared, and its own fixture takes it down (tests/netpol
    runs on tests/autoscale's node, which has the policy controller too, and saves an up)."""
    hold_node_lock()
    for c in UP:
        if set(up_args) <= set(c.up_args):
            yield c
            return
    while UP:
        UP.pop().script("down")
    before = host_state()
    c = NodeCluster(tmp_path_factory.mktemp(name))
    c.host_before, c.up_args = before, up_args
    started = time.monotonic()
    try:
        c.script("up", *up_args)
    except kube.Failed:
        c.script("down")
        raise
    figures.record("node", figure, round(time.monotonic() - started, 1))
    UP.append(c)
    try:
        yield c
    finally:
        c.script("down")   # again after a test that took it down: a no-op then
        if c in UP:
            UP.remove(c)


def rng_served(release):
    """{node: (requests, seconds)} of rng's work route `/<n>` on each node: the count and sum of
    each rng pod's http_request_duration_seconds histogram (queueing included), read through the
    API server's pod proxy."""
    served = {}
    for pod in release.ready_pods("rng"):
        text = release.raw(f"/api/v1/namespaces/{release.ns}/pods/{pod['metadata']['name']}:8080"
                           "/proxy/metrics")
        figures = {"count": 0.0, "sum": 0.0}
        for kind, labels, value in re.findall(
                r"^http_request_duration_seconds_(count|sum)\{([^}]*)\} (\S+)$", text, re.M):
            if 'route="/<n>"' in labels:
                figures[kind] += float(value)
        served[pod["spec"]["nodeName"]] = (figures["count"], figures["sum"])
    return served

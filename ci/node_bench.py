"""The DockerCoins benchmark on a real node (`ci/bench.sh --node`): build and start the node
(`ci/cluster.sh up --node`), install the chart, and for each (workers, rng) cell scale, wait and
measure with the lab's code (dockercoins_lab: the `kubernetes` client; the speed from webui's
/json through the API server's service proxy). Prints the node's own figures (build, up, install,
idle CPU and memory) and the table against the model and the random-balancing estimate
(dockercoins_lab.scaling), and writes out/bench-node.png.

`ci/bench.sh --nodes 3` measures the DaemonSet chapter on three real nodes (`up --nodes 3`): 15
workers on an rng DaemonSet with random balancing, then with PreferSameNode, then 30 workers on 3
rng Deployment pods; and the time to three nodes Ready, each node's idle parts, and the duration of
a drain while mining. It writes out/bench-nodes.png."""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockercoins_lab import cli as lab, scaling  # the lab (lab/), installed in the venv

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"
CELLS = [(1, 1), (2, 1), (10, 1), (10, 3)]
NODE_PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns")
TICKS = os.sysconf("SC_CLK_TCK")


class Node:
    """ci/cluster.sh with its own CLUSTER_DIR, and kubectl/helm pointed at it."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.env = {**os.environ, "CLUSTER_DIR": str(self.dir),
                    "KUBECONFIG": str(self.dir / "kubeconfig"),
                    "PATH": f"{TOOLS_BIN}:{os.environ['PATH']}"}

    def run(self, *argv, timeout=1800):
        proc = subprocess.run([str(a) for a in argv], env=self.env, cwd=ROOT, text=True,
                              capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(map(str, argv))} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def timed(self, *argv):
        started = time.monotonic()
        self.run(*argv)
        return round(time.monotonic() - started, 1)

    def idle(self, seconds=10.0, names=NODE_PROCESSES):
        """CPU (% of one core) and RSS (MiB) of each named node process over an idle window."""
        pids = {name: int((self.dir / "pids" / name).read_text()) for name in names}

        def cpu(pid):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICKS
        before = {name: cpu(pid) for name, pid in pids.items()}
        time.sleep(seconds)
        figures = {}
        for name, pid in pids.items():
            rss = next(int(line.split()[1]) for line in
                       Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("VmRSS:"))
            figures[name] = (100 * (cpu(pid) - before[name]) / seconds, rss / 1024)
        return figures


# The three-node rows: (workers, rng as the table says, balancing, helm --set arguments).
SPREAD = ["worker.topologySpreadConstraints[0].maxSkew=1",
          "worker.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
          "worker.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
          "worker.topologySpreadConstraints[0].nodeTaintsPolicy=Honor"]
NODES_ROWS = [
    (15, "DaemonSet × 3", "random", ["rng.kind=DaemonSet", "worker.replicaCount=15"]),
    (15, "DaemonSet × 3", "PreferSameNode", ["rng.service.trafficDistribution=PreferSameNode"]),
    (30, "Deployment × 3", "random", ["rng.kind=Deployment", "rng.replicaCount=3",
                                      "rng.service.trafficDistribution=",
                                      "worker.replicaCount=30"]),
]


def node_parts(count):
    """The pid names of each node's own parts: {node index: [containerd-K, kubelet-K, ...]}."""
    return {i: [name if i == 0 else f"{name}-{i}"
                for name in ("containerd", "kubelet", "kube-proxy")] for i in range(count)}


def nodes_table(rows):
    """The Markdown table of the three-node rows: (W, rng, balancing, measured, model, estimate)."""
    lines = ["| W | rng | balancing | measured | model | random-balancing estimate |",
             "|---|---|---|---|---|---|"]
    for workers, rng, balancing, measured, expected, balanced in rows:
        lines.append(f"| {workers} | {rng} | {balancing} | {measured:.2f} | {expected:.0f} "
                     f"| {balanced:.1f} |")
    return "\n".join(lines)


def plot_rows(rows):
    """The three-node rows as scaling.plot() takes them, R short: "DS×3 PreferSameNode"."""
    short = {"DaemonSet": "DS", "Deployment": "Deploy"}
    return [(w, f"{short[r.split()[0]]}×{r.split()[-1]} {b}", m, e, est)
            for w, r, b, m, e, est in rows]


def drain_while_mining(node, app, name):
    """`kubectl drain NAME` while the workers mine, then uncordon: the drain's seconds."""
    seconds = node.timed("kubectl", "drain", name, "--ignore-daemonsets", "--delete-emptydir-data",
                         "--timeout=180s")
    node.run("kubectl", "uncordon", name)
    app.wait(["worker"], 180.0)
    return seconds


def nodes_main(args):
    """`ci/bench.sh --nodes N` (3 for the table): see the module's docstring."""
    node = Node(tempfile.mkdtemp(prefix="bench-nodes-"))
    node.timed(ROOT / "ci" / "cluster.sh", "build", "--node")
    up = node.timed(ROOT / "ci" / "cluster.sh", "up", "--nodes", args.nodes)
    rows = []
    try:
        idle = {i: node.idle(names=names) for i, names in node_parts(args.nodes).items()}
        node.run("kubectl", "create", "namespace", "bench")
        app = lab.Lab("bench", kubeconfig=node.env["KUBECONFIG"])
        helm = ["helm", "-n", "bench"]
        for i, (workers, rng, balancing, sets) in enumerate(NODES_ROWS):
            if i == 0:
                verb = ["install", "dockercoins", "charts/dockercoins",
                        "-f", node.dir / "node-values.yaml", *(f"--set={s}" for s in SPREAD)]
            else:
                verb = ["upgrade", "dockercoins", "charts/dockercoins", "--reuse-values"]
            node.run(*helm, *verb, *(f"--set={s}" for s in sets), "--wait", "--timeout", "5m")
            app.wait(["worker", "rng"], 180.0)
            time.sleep(10.0)
            measured = app.measure(args.seconds)
            replicas = int(rng.split()[-1])
            rows.append((workers, rng, balancing, measured, scaling.model(workers, replicas),
                         scaling.random_balancing(workers, replicas)))
            print(f"W={workers} {rng} {balancing}: {measured:.2f} hashes/s", file=sys.stderr)
        drain = drain_while_mining(node, app, "dockercoins-node-1")
    except lab.LabError as e:
        sys.exit(f"ci/node_bench.py: {e}")
    finally:
        node.run(ROOT / "ci" / "cluster.sh", "down")
    print(f"nodes: {args.nodes}, up to all Ready {up} s, a drain of dockercoins-node-1 while "
          f"mining {drain} s")
    for i, parts in idle.items():
        total = sum(cpu for cpu, _ in parts.values())
        print(f"idle, node {i}: {idle_line(parts)} (all: {total:.1f}% of a core)")
    print()
    print(nodes_table(rows))
    path = Path(args.out) / "bench-nodes.png"
    scaling.plot(plot_rows(rows), path,
                 title=f"DockerCoins on {args.nodes} real nodes: measured against the model")
    print(f"\nplot: {path}")


def idle_line(parts):
    """{process: (CPU %, RSS MiB)} as one line: "kubelet 1.2% CPU 60 MiB, ..."."""
    return ", ".join(f"{name} {cpu:.1f}% CPU {rss:.0f} MiB" for name, (cpu, rss) in parts.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="window per cell")
    parser.add_argument("--out", default=str(ROOT / "out"), help="where the plot goes")
    parser.add_argument("--nodes", type=int, help="N real nodes and the DaemonSet chapter's rows")
    args = parser.parse_args()
    if args.nodes:
        return nodes_main(args)
    node = Node(tempfile.mkdtemp(prefix="bench-node-"))
    build = node.timed(ROOT / "ci" / "cluster.sh", "build", "--node")
    up = node.timed(ROOT / "ci" / "cluster.sh", "up", "--node")
    try:
        idle = node.idle()
        node.run("kubectl", "create", "namespace", "bench")
        install = node.timed("helm", "install", "dockercoins", "charts/dockercoins", "-n", "bench",
                             "-f", node.dir / "node-values.yaml", "--wait", "--timeout", "5m")
        app = lab.Lab("bench", kubeconfig=node.env["KUBECONFIG"])
        rows = []
        for workers, rng in CELLS:
            rows.append(app.step(workers, rng, args.seconds, settle=10.0, timeout=180.0))
            print(f"W={workers} R={rng}: {rows[-1][2]:.2f} hashes/s", file=sys.stderr)
    except lab.LabError as e:
        sys.exit(f"ci/node_bench.py: {e}")
    finally:
        node.run(ROOT / "ci" / "cluster.sh", "down")
    print(f"node: build {build} s (0.x s when cached), up to node Ready {up} s, "
          f"helm install --wait {install} s")
    print(f"idle: {idle_line(idle)}")
    print()
    print(scaling.table(rows))
    path = Path(args.out) / "bench-node.png"
    scaling.plot(rows, path)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()

"""The DockerCoins benchmark on a real node (`ci/bench.sh --node`): build and start the node
(`ci/cluster.sh up --node`), install the chart, and for each (workers, rng) cell scale with kubectl
and measure the speed from webui's /json through the API server's service proxy. Prints the node's
own figures (build, up, install, idle CPU and memory) and the table against the model and the
random-balancing estimate, and writes out/bench-node.png."""
import argparse
import heapq
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"
CELLS = [(1, 1), (2, 1), (10, 1), (10, 3)]
NODE_PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns")
TICKS = os.sysconf("SC_CLK_TCK")


def model(workers, rng):
    """Hashes/s by the bottleneck model: min(3.33 x workers, 10 x rng)."""
    return min(workers / 0.3, 10.0 * rng)


def random_balancing(workers, rng, seconds=3000.0, seed=1):
    """Hashes/s when each rng call goes to a replica picked at random, as kube-proxy does per
    connection: a discrete-event simulation of the worker loop (0.1 s sleep, an rng call served
    one at a time in 0.1 s, a 0.1 s hasher call). Random picks can queue calls on one replica
    while another idles, so the result stays below the model once rng is the bottleneck."""
    pick = random.Random(seed)
    free_at = [0.0] * rng              # when each rng replica finishes its queue
    events = [(0.1, w) for w in range(workers)]   # (time the worker calls rng, worker)
    heapq.heapify(events)
    loops = 0
    while events:
        now, worker = heapq.heappop(events)
        if now > seconds:
            break
        replica = pick.randrange(rng)
        done = max(now, free_at[replica]) + 0.1
        free_at[replica] = done
        loops += 1
        heapq.heappush(events, (done + 0.1 + 0.1, worker))   # hasher, then the next sleep
    return loops / seconds


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

    def kubectl(self, *args):
        return self.run("kubectl", "-n", "bench", *args, timeout=300)

    def hashes(self):
        raw = self.run("kubectl", "get", "--raw",
                       "/api/v1/namespaces/bench/services/webui:80/proxy/json", timeout=30)
        return json.loads(raw)["hashes"]

    def speed(self, seconds):
        """Least-squares slope of `hashes` over the window, in hashes/s."""
        samples = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            samples.append((time.monotonic(), self.hashes()))
            time.sleep(0.5)
        n = len(samples)
        mean_t = sum(t for t, _ in samples) / n
        mean_v = sum(v for _, v in samples) / n
        return (sum((t - mean_t) * (v - mean_v) for t, v in samples)
                / sum((t - mean_t) ** 2 for t, _ in samples))

    def idle(self, seconds=10.0):
        """CPU (% of one core) and RSS (MiB) of each node process over an idle window."""
        pids = {name: int((self.dir / "pids" / name).read_text()) for name in NODE_PROCESSES}

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


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = [f"W={w} R={r}" for w, r, *_ in rows]
    xs = range(len(rows))
    ax.bar([x - 0.27 for x in xs], [row[2] for row in rows], 0.27, label="measured on real pods")
    ax.bar(xs, [row[3] for row in rows], 0.27, label="model min(3.33·W, 10·R)")
    ax.bar([x + 0.27 for x in xs], [row[4] for row in rows], 0.27, label="random balancing")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("hashes per second")
    ax.set_title("DockerCoins on a real node: measured against the model")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="window per cell")
    parser.add_argument("--out", default=str(ROOT / "out"), help="where the plot goes")
    args = parser.parse_args()
    node = Node(tempfile.mkdtemp(prefix="bench-node-"))
    build = node.timed(ROOT / "ci" / "cluster.sh", "build", "--node")
    up = node.timed(ROOT / "ci" / "cluster.sh", "up", "--node")
    try:
        idle = node.idle()
        node.run("kubectl", "create", "namespace", "bench")
        install = node.timed("helm", "install", "dockercoins", "charts/dockercoins", "-n", "bench",
                             "-f", node.dir / "node-values.yaml", "--wait", "--timeout", "5m")
        rows = []
        for workers, rng in CELLS:
            node.kubectl("scale", "deployment", "worker", f"--replicas={workers}")
            node.kubectl("scale", "deployment", "rng", f"--replicas={rng}")
            for name in ("worker", "rng"):
                node.kubectl("rollout", "status", f"deployment/{name}", "--timeout=180s")
            time.sleep(10)   # the new workers' first loops and flushes
            rows.append((workers, rng, node.speed(args.seconds), model(workers, rng),
                         random_balancing(workers, rng)))
            print(f"W={workers} R={rng}: {rows[-1][2]:.2f} hashes/s", file=sys.stderr)
    finally:
        node.run(ROOT / "ci" / "cluster.sh", "down")
    print(f"node: build {build} s (0.x s when cached), up to node Ready {up} s, "
          f"helm install --wait {install} s")
    print("idle: " + ", ".join(f"{name} {cpu:.1f}% CPU {rss:.0f} MiB"
                               for name, (cpu, rss) in idle.items()))
    print()
    print("| W | R | measured on real pods | model min(3.33 W, 10 R) | random-balancing estimate |")
    print("|---|---|---|---|---|")
    for workers, rng, measured, expected, balanced in rows:
        print(f"| {workers} | {rng} | {measured:.2f} | {expected:.2f} | {balanced:.1f} |")
    path = Path(args.out) / "bench-node.png"
    plot(rows, path)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()

"""The DockerCoins benchmark on a real node (`ci/bench.sh --node`): build and start the node
(`ci/cluster.sh up --node`), install the chart, and for each (workers, rng) cell scale, wait and
measure with ci/lab.py (the `kubernetes` client; the speed from webui's /json through the API
server's service proxy). Prints the node's own figures (build, up, install, idle CPU and
memory) and the table against the model and the random-balancing estimate (ci/scaling.py), and
writes out/bench-node.png."""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lab  # ci/lab.py: a script's own folder is first on sys.path
import scaling  # ci/scaling.py

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
    print("idle: " + ", ".join(f"{name} {cpu:.1f}% CPU {rss:.0f} MiB"
                               for name, (cpu, rss) in idle.items()))
    print()
    print(scaling.table(rows))
    path = Path(args.out) / "bench-node.png"
    scaling.plot(rows, path)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()

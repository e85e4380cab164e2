"""Helpers for the workshop tests: is this a cluster whose pods run, and commands as typed."""
import subprocess

from helpers import kube


def runs_containers(cluster):
    """False on kwok's fake nodes, which run no container (so no logs, no ClusterIP traffic)."""
    nodes = cluster.get("nodes")["items"]
    return any(n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") != "fake"
               for n in nodes)


def shell(cluster, script, kubeconfig, timeout=600):
    """Runs commands as a person types them: bash, in the repo, with the pinned helm and kubectl
    first on PATH and KUBECONFIG pointing at `kubeconfig`. Returns stdout; fails with all the
    output when a command fails."""
    env = {**cluster.env, "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=kube.ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script}\nexited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout

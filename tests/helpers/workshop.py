"""Helpers for the workshop tests: commands as typed, and a one-off pod's whole output."""
import subprocess

from helpers import kube


def shell(cluster, script, kubeconfig, timeout=600):
    """Runs commands as a person types them: bash, in the repo, with the pinned helm and kubectl
    first on PATH and KUBECONFIG pointing at `kubeconfig`. Returns stdout; fails with all the
    output when a command fails."""
    env = {**cluster.env, "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=kube.ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script}\nexited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def one_off_pod(command, image="${HTTPING_IMAGE:?set HTTPING_IMAGE}", timeout="2m"):
    """Shell lines that run `command` (a `sh -c` string) in a one-off pod and print its whole
    output: `kubectl run` without attaching, wait for the pod to succeed, then `kubectl logs`.
    `kubectl run -i` attaches only after the container has started, so the first lines of a
    quick command can be lost (a new machine's CI once saw 5 of httping's 6 lines). A pod that
    fails or does not finish within `timeout` fails the script, with its log."""
    return f"""
POD=oneoff-$RANDOM$RANDOM
kubectl run $POD --restart=Never --image={image} -- sh -c "{command}" >/dev/null
kubectl wait pod/$POD --for=jsonpath='{{.status.phase}}'=Succeeded --timeout={timeout} >/dev/null \\
  || {{ kubectl logs $POD; kubectl get pod $POD -o wide; exit 1; }}
kubectl logs $POD
kubectl delete pod $POD --wait=false >/dev/null
"""

"""Every command block of README.md, docs/*.md and the chart's README runs as typed, or says
why not (readme.py): the workshop walk of docs/workshop.md in order on the local control plane
(install, scale, upgrade with the counts, the DaemonSet, the HPA hand-over, uninstall), the
local-cluster block of docs/cluster.md in a cluster of its own, and the rest in the tests their
markers name. Placeholders such as `<tag>` get a value; after each block a check says whether it
did what the page's text says."""
import re
import shutil
import subprocess

import pytest

import readme
from helpers.workshop import shell
from localapp import ROOT, wait_until

pytestmark = pytest.mark.timeout(900)

# The one page whose unmarked blocks run, in order, as a single walk.
WALK = "docs/workshop.md"
# An all-digit short SHA for <tag>: `--set` would make it a number, `--set-string` does not.
PLACEHOLDERS = {"<group>/<project>": "dockercoins/dockercoins", "<tag>": "12345678",
                "<deploy token username>": "deployer", "<deploy token>": "not-a-real-token"}


def fill(code):
    for placeholder, value in PLACEHOLDERS.items():
        code = code.replace(placeholder, value)
    left = re.findall(r"<[a-z][^>]*>", code)
    assert not left, f"{WALK} placeholders with no test value: {left}"
    return code


def test_every_command_block_runs_or_says_why():
    blocks = readme.all_command_blocks()
    assert len(blocks) >= 25   # the parser finds them: 29 when written
    assert {"README.md", WALK, "docs/cluster.md", "docs/node.md"} <= {b.page for b in blocks}
    for block in blocks:
        where = block.where()
        if block.marker == "norun":
            assert len(block.note) > 10, f"{where}: say why it cannot run"
        elif block.marker == "run":
            test = re.search(r"tests/\S+\.py", block.note)
            assert test and (ROOT / test.group(0)).is_file(), f"{where}: name the test that runs it"
        else:
            assert block.page == WALK, f"{where}: no test runs it; mark it"


def test_the_readme_keeps_its_set_up_commands_tested():
    """The front page's two commands are there, and each is run by a test its marker names."""
    blocks = readme.command_blocks()
    typed = [line for block in blocks for line in block.lines()]
    assert any(line.startswith("ci/up.sh") for line in typed), typed
    assert any(line.startswith("ci/test.sh") for line in typed), typed


def test_the_marking_is_read_as_written():
    text = ("## A\n<!-- norun: because -->\n```sh\necho no\n```\n\n```console\necho yes\n```\n"
            "## B\n   ```sh\n   echo indented\n   ```\n```\nnot a command\n```\n")
    blocks = readme.command_blocks(text=text)
    assert [(b.section, b.marker, b.note, b.code) for b in blocks] == [
        ("A", "norun", "because", "echo no"), ("A", "", "", "echo yes"),
        ("B", "", "", "echo indented")]


# --- the Helm steps -----------------------------------------------------------------------
def spec(cluster, kind, name):
    return cluster.get(kind, name, "-n", "dockercoins")["spec"]


def kinds_named(cluster, name):
    return {kind for kind in ("deployment", "daemonset")
            if cluster.run(["kubectl", "get", kind, name, "-n", "dockercoins"],
                           check=False).returncode == 0}


def check_installed(cluster):
    image = spec(cluster, "deployment", "worker")["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.gitlab.com/dockercoins/dockercoins/worker:12345678", image
    assert spec(cluster, "deployment", "worker")["template"]["spec"]["imagePullSecrets"] == [
        {"name": "gitlab-registry"}]


def check_replicas(**expected):
    def check(cluster):
        for name, count in expected.items():
            wait_until(lambda: spec(cluster, "deployment", name)["replicas"] == count, 30,
                       f"{name} at {count} replicas")
    return check


def check_daemonset(cluster):
    assert kinds_named(cluster, "rng") == {"daemonset"}
    nodes = len(cluster.get("nodes")["items"])
    wait_until(lambda: cluster.get("daemonset", "rng", "-n", "dockercoins")["status"].get(
        "numberReady") == nodes, 120, f"one ready rng on each of the {nodes} nodes")
    wait_until(lambda: len(cluster.running_ready_pods("dockercoins", "app=rng")) == nodes, 60,
               "the Deployment's rng pods gone, one DaemonSet pod per node left")


def check_hpa(cluster):
    assert kinds_named(cluster, "rng") == {"deployment"}
    hpa = cluster.get("hpa", "rng", "-n", "dockercoins")
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 8
    assert cluster.get("servicemonitors", "-n", "dockercoins")["items"]


def check_uninstalled(cluster):
    assert "dockercoins" not in cluster.helm("list", "-A", "-q").split()


CHECKS = [  # (text of the block, check), in the order of docs/workshop.md
    ("helm upgrade --install dockercoins", check_installed),
    ("kubectl scale deployment worker --replicas=2", check_replicas(worker=10)),
    ("kubectl scale deployment rng --replicas=3", check_replicas(rng=3)),
    ("--set worker.replicaCount=10 --set rng.replicaCount=3", check_replicas(worker=10, rng=3)),
    ("--set rng.kind=DaemonSet", check_daemonset),
    ("rng-hpa-values.yaml", check_hpa),
    ("helm uninstall dockercoins", check_uninstalled),
]


def test_the_helm_steps_as_typed(cluster, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"  # step 4 changes the current context's namespace
    shutil.copy(cluster.kubeconfig, kubeconfig)
    blocks = [b for b in readme.command_blocks(WALK) if not b.marker]
    checked = []
    try:
        for block in blocks:
            shell(cluster, fill(block.code), kubeconfig)
            for text, check in CHECKS:
                if text in block.code:
                    check(cluster)
                    checked.append(text)
    finally:
        cluster.kubectl("delete", "namespace", "dockercoins", "--wait=false", check=False)
    assert checked == [text for text, _ in CHECKS], f"a step of {WALK} the checks expect is gone"


def test_the_local_cluster_block_as_typed(cluster, tmp_path):
    """docs/cluster.md's own `ci/cluster.sh up ... down`, in a cluster directory of its own."""
    block = readme.block_starting("ci/cluster.sh up", "docs/cluster.md")
    env = {**cluster.env, "CLUSTER_DIR": str(tmp_path / "cluster")}
    env.pop("KUBECONFIG")  # the block's `eval "$(ci/cluster.sh env)"` sets it
    proc = shell_env(block.code, env)
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        running = [line for line in proc.stdout.splitlines()
                   if line.startswith("worker-") and " Running " in line]
        assert len(running) == 10, proc.stdout  # kubectl get pods -o wide
    finally:
        shell_env("ci/cluster.sh down", env)


def shell_env(script, env):
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)

"""Every Debian package a test or script needs is installed by ci/, so `ci/test.sh` passes on a
new machine: a tool that only happens to be on this one fails CI elsewhere."""
import re

import pytest

from localapp import ROOT

# (package, what needs it). Add a row with every new apt-installed tool.
NEEDED = [
    ("redis-server", "ci/up.sh, tests/*: the real redis"),
    ("rsync", "gitlab-ci-local (tests/pipeline, tests/cluster) copies each job's files with it"),
    ("httping", "tests/workshop times GET / on rng and hasher as the workshop does"),
    ("chromium", "tests/dashboard: Playwright drives Debian's browser"),
    ("podman", "tests/containers, tests/rendered"),
    ("buildah", "tests/containers: image builds"),
    ("docker-registry", "tests/chart: helm push/pull round trip; the real node's image registry"),
    ("containerd", "tests/node: the real node's container runtime"),
    ("runc", "tests/node: containerd's runtime"),
    ("containernetworking-plugins", "tests/node: the CNI bridge, host-local, portmap, loopback"),
    ("iptables", "tests/node: kube-proxy and the node's containment chain"),
    ("ipset", "tests/netpol: kube-router's policy controller matches pods with the kernel's ipsets"),
]
INSTALL = re.compile(r"(?:apt_install|apt-get install)\b([^\n]*)")


def installed_by_ci():
    packages = set()
    for script in (ROOT / "ci").rglob("*.sh"):
        for args in INSTALL.findall(script.read_text().replace("\\\n", " ")):
            packages.update(re.findall(r"(?<![\w$-])([a-z0-9][a-z0-9.+-]+)", args.split("#")[0]))
    return packages


@pytest.mark.parametrize("package, why", NEEDED)
def test_ci_installs_it(package, why):
    assert package in installed_by_ci(), f"nothing in ci/ installs {package} ({why})"

"""`pip install` of the project into a fresh venv, as docs/lab.md's first block types it, gives
the `dockercoins-lab` command with every verb; without the `lab` extra it says what to install,
and with it the command runs outside the checkout and, with no cluster, says what to fix. No
cluster is needed: the packaging itself is what is proven (a real build by the pinned backend,
the real dependencies from PyPI at the project's pins)."""
import argparse
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from dockercoins_lab import cli

from helpers.pins import pins
from localapp import ROOT
from workshop import readme

pytestmark = pytest.mark.timeout(900)

VERBS = {"scale", "rng-kind", "measure", "experiment", "gate", "drain"}
# Each compiled lock and the extras of pyproject.toml it pins (ci/pin-requirements.sh).
LOCKS = {"ci/requirements.txt": ("lab", "bench"),
         "tests/requirements.txt": ("lab", "bench", "test"),
         "ci/lint-requirements.txt": ("lint",)}


def docs_line(prefix):
    """docs/lab.md's command that starts with PREFIX, as typed, from its first block."""
    return readme.first_line_starting(prefix, "", ROOT / "docs" / "lab.md")


def shell(line, env, cwd=ROOT, timeout=600):
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=timeout)


def lab(env, *args, cwd):
    proc = subprocess.run(["dockercoins-lab", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def install(line, env):
    """LINE in the checkout, which it leaves as it was: no build folder, no egg-info."""
    before = shell("git status --porcelain --ignored", env).stdout
    done = shell(line, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert shell("git status --porcelain --ignored", env).stdout == before


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """docs/lab.md's venv line as typed, with HOME a new folder; then the environment of a shell
    that has it active, without this checkout's .venv and tools. Yields (venv, env)."""
    home = tmp_path_factory.mktemp("lab-home")
    ours = {str(ROOT / ".venv" / "bin"), str(ROOT / ".tools" / "bin")}
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "VENV")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p not in ours)
    # pip's cache stays the user's: the new HOME is for the venv only.
    env.update(HOME=str(home), PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"))
    line = docs_line("python3 -m venv")
    assert line == "python3 -m venv ~/dockercoins-lab && . ~/dockercoins-lab/bin/activate", line
    done = shell(line, env, cwd=home, timeout=120)
    assert done.returncode == 0, done.stderr
    path = home / "dockercoins-lab"
    env.update(VIRTUAL_ENV=str(path), PATH=os.pathsep.join([str(path / "bin"), env["PATH"]]))
    return path, env


@pytest.fixture(scope="module")
def installed(venv):
    """docs/lab.md's install line, as typed, in the checkout: the lab extra at the project's
    pins."""
    path, env = venv
    line = docs_line("pip install")
    assert line == "pip install -c ci/requirements.txt '.[lab]'", line
    install(line, env)
    return path, env


def test_without_the_extra_the_command_says_what_to_install(venv, tmp_path):
    path, env = venv
    install("pip install --quiet .", env)
    assert (path / "bin" / "dockercoins-lab").is_file()
    status, out, err = lab(env, "--help", cwd=tmp_path)
    assert status == 0, err
    assert out.startswith("usage: dockercoins-lab "), out
    listed = out.split("{", 1)[1].split("}", 1)[0].split(",")
    choices = next(a for a in cli.parser()._actions
                   if isinstance(a, argparse._SubParsersAction)).choices
    assert set(listed) == VERBS == set(choices), listed   # the checkout's verbs, every one
    status, _, err = lab(env, "measure", cwd=tmp_path)
    assert status == 1 and "Traceback" not in err, err
    assert "the `kubernetes` Python client is not installed" in err, err
    assert "Fix: install the lab with its extra, in the checkout: pip install -c " \
        "ci/requirements.txt '.[lab]'" in err, err


def test_the_install_of_the_docs_is_the_projects_pins(installed, tmp_path):
    path, env = installed
    frozen = shell("pip list --format=freeze", env).stdout.split()
    versions = dict(row.lower().replace("_", "-").split("==") for row in frozen)
    pinned = pins(ROOT / "ci" / "requirements.txt")
    for name in ("kubernetes", "matplotlib", "urllib3", "numpy"):
        assert versions[name] == pinned[name], (name, versions[name], pinned[name])
    # A copy in the venv, not this checkout's code: it runs from any folder.
    where = shell("python -c 'import dockercoins_lab.cli as c; print(c.__file__)'", env,
                  cwd=tmp_path).stdout.strip()
    assert where.startswith(str(path)), where


def test_the_installed_command_says_what_to_fix(installed, tmp_path):
    """A bad argument exits 2 with argparse's usage; no cluster exits 1 with the lab's message
    and its fix, no traceback."""
    _, env = installed
    status, out, err = lab(env, "scale", "worker", "many", cwd=tmp_path)
    assert status == 2 and out == "", err
    assert err.startswith("usage: dockercoins-lab scale "), err
    assert "argument replicas: invalid int value: 'many'" in err, err
    status, out, err = lab(env, "scale", "hasher", "2", cwd=tmp_path)
    assert status == 2 and "invalid choice: 'hasher' (choose from" in err, err
    status, out, err = lab({**env, "KUBECONFIG": str(tmp_path / "missing")}, "measure",
                           cwd=tmp_path)
    assert status == 1 and out == "" and "Traceback" not in err, err
    assert err.startswith("dockercoins-lab: no cluster: cannot load the kubeconfig "
                          f"{tmp_path / 'missing'}"), err
    assert "Fix: set KUBECONFIG (or --kubeconfig)" in err, err


def test_each_extra_is_pinned_in_its_lock_and_each_package_has_one_version():
    """pyproject.toml names packages without versions; each lock pins every package of its
    extras; and a package pinned by two files (the locks, the images' own) has one version in
    all, so the one venv installs them together and a pin is written by hand once."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == {"lab", "bench", "test", "lint"}, extras
    assert project["dependencies"] == []
    for lock, names in LOCKS.items():
        pinned = pins(ROOT / lock)
        for extra in names:
            for requirement in extras[extra]:
                assert re.fullmatch(r"[A-Za-z0-9._-]+", requirement), \
                    f"{requirement!r}: the version belongs in the lock, not in pyproject.toml"
                name = requirement.lower().replace("_", "-")
                assert name in pinned, f"{name} ({extra}) is not pinned in {lock}: " \
                    "run ci/pin-requirements.sh"
    versions = {}
    images = (ROOT / "images").glob("*/requirements.txt")
    files = [*LOCKS, *(str(p.relative_to(ROOT)) for p in images)]
    for path in files:
        for name, version in pins(ROOT / path).items():
            versions.setdefault(name, {})[path] = version
    split = {name: by_file for name, by_file in versions.items() if len(set(by_file.values())) > 1}
    assert not split, split
    # The hand-written specs: kubernetes' version is written once, in the webui image's.
    specs = [ROOT / "pyproject.toml", *sorted((ROOT / "images").glob("*/requirements.in"))]
    pinned_by_hand = [p.relative_to(ROOT) for p in specs if "kubernetes==" in p.read_text()]
    assert [str(p) for p in pinned_by_hand] == ["images/webui/requirements.in"], pinned_by_hand

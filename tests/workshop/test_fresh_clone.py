"""The first commands a reader types work as the first thing run in a fresh clone: no .venv, no
.tools, nothing installed by an earlier test. Each test copies the tracked files (as a clone
has them) and runs the page's line as typed (README.md's `ci/up.sh`, docs/testing.md's
`ci/bench.sh --quick`), with this checkout's venv and tools off PATH."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import requests

import readme
from localapp import ROOT, free_port, free_port_block, wait_until

pytestmark = pytest.mark.timeout(900)


def fresh_copy(dest):
    """The tracked files, as `git clone` lays them out (with any uncommitted edits)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def fresh_env(**extra):
    """This environment without this checkout's venv and tools: a new shell in a new clone."""
    ours = {str(ROOT / ".venv" / "bin"), str(ROOT / ".tools" / "bin")}
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "VENV")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p not in ours)
    return {**env, **extra}


def test_up_first(tmp_path):
    clone = fresh_copy(tmp_path / "clone")
    line = readme.first_line_starting("ci/up.sh --workers", "Set up")
    ports = {name: str(free_port()) for name in ("WEBUI_PORT", "RNG_PORT", "HASHER_PORT",
                                                  "REDIS_PORT")}
    env = fresh_env(**ports, METRICS_PORT_BASE=str(free_port_block(500)))
    log = open(tmp_path / "up.log", "wb")
    proc = subprocess.Popen(["bash", "-c", line], cwd=clone, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    webui = f"http://127.0.0.1:{ports['WEBUI_PORT']}/json"
    workers = int(line.split("--workers")[1].split()[0])
    try:
        # The first run makes the venv (pip, about a minute), then starts the app.
        wait_until(lambda: requests.get(webui, timeout=1).json()["workers"] == workers, 600,
                   interval=1, what=f"{line} in a fresh clone")
        wait_until(lambda: requests.get(webui, timeout=1).json()["speed"] > 10, 30,
                   what="mining faster than one rng allows")
    except TimeoutError:
        raise AssertionError((tmp_path / "up.log").read_text()[-4000:])
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode in (0, 130), (tmp_path / "up.log").read_text()[-4000:]
    assert (clone / ".venv" / "bin" / "python").exists()


def test_bench_quick_first(tmp_path):
    clone = fresh_copy(tmp_path / "clone")
    line = readme.first_line_starting("ci/bench.sh --quick", "Benchmarks", "docs/testing.md")
    assert line == "ci/bench.sh --quick"
    started = time.monotonic()
    proc = subprocess.run(["bash", "-c", line], cwd=clone, env=fresh_env(), capture_output=True,
                          text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = [row.split() for row in proc.stdout.splitlines() if row.strip()[:1].isdigit()]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1, 1), (2, 1), (6, 1), (6, 2)], proc.stdout
    assert f"plot: {clone / 'out' / 'bench.png'}" in proc.stdout
    assert (clone / "out" / "bench.png").stat().st_size > 10_000
    # The figures beside the seed's (issue 23): both services' CPU, and memory without webui.
    beside = [row for row in proc.stdout.splitlines() if row.startswith("beside the seed: ")]
    assert [row.split(":")[1].split(",")[0].strip() for row in beside] == [
        "rng CPU per call", "hasher CPU per call", "summed memory"], proc.stdout
    assert re.search(r"RSS [0-9.]+ MiB over 7 processes .* PSS [0-9.]+ MiB$", beside[2]), beside
    print(f"fresh clone: ci/bench.sh --quick took {time.monotonic() - started:.0f} s\n{proc.stdout}")

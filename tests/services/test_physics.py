"""The bottleneck physics of SPEC.md, on the app as ci/up.sh runs it:
throughput ~= min(3.33 x workers, 10 x rng). Ratios with tolerances over 15 s windows."""
import functools
from pathlib import Path

import pytest
import requests

from localapp import LocalApp, alive, measure, process_tree, until_first_stop
from dockercoins_lab.scaling import model

@functools.lru_cache(maxsize=None)
def cell(workers, rng):
    with LocalApp(workers, rng) as app:
        return measure(app)


def test_one_worker_hashes_about_3_33_a_second():
    assert cell(1, 1)["rate"] / model(1, 1) == pytest.approx(1.0, abs=0.1)


def test_two_workers_hash_twice_as_fast():
    assert cell(2, 1)["rate"] / cell(1, 1)["rate"] == pytest.approx(2.0, rel=0.1)


def test_six_workers_on_one_rng_plateau_at_10_while_rng_latency_climbs():
    one, six = cell(1, 1), cell(6, 1)
    assert six["rate"] / model(6, 1) == pytest.approx(1.0, abs=0.1)
    # Six workers want 20/s from a 10/s rng: calls queue behind its cap...
    assert six["rng_seconds"] > 3 * one["rng_seconds"], (one, six)
    # ...while hasher keeps its ~0.1 s.
    assert six["hasher_seconds"] < 1.5 * one["hasher_seconds"], (one, six)


def test_a_second_rng_lifts_the_plateau():
    assert cell(6, 2)["rate"] / model(6, 2) == pytest.approx(1.0, abs=0.1)
    assert cell(6, 2)["rate"] / cell(6, 1)["rate"] == pytest.approx(2.0, rel=0.15)


def test_ctrl_c_stops_everything_and_frees_the_ports():
    app = LocalApp(2, 1)
    pids = process_tree(app.process.pid)
    assert len(pids) >= 6  # redis, rng, hasher, webui, 2 workers (+ gunicorn children)
    assert app.stop() in (0, 130)
    still_running = [pid for pid in pids if alive(pid)]
    assert still_running == []
    for url in (app.webui, app.rng_url, app.hasher_url, *app.worker_urls):
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/healthz", timeout=1)


def listening_addresses(port):
    """The local addresses (hex, as /proc/net/tcp* writes them) that listen on a TCP port."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_ctrl_c_stops_the_workers_before_redis_and_leaves_nothing(monkeypatch, tmp_path):
    """Each worker hands its last count to redis before redis stops; no temp folder stays;
    locally every port listens on 127.0.0.1 only."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    app = LocalApp(6, 1)
    try:
        for url in (app.webui, app.rng_url, app.hasher_url, *app.worker_urls,
                    app.redis_url.rsplit("/", 1)[0]):
            port = int(url.rsplit(":", 1)[1])
            assert listening_addresses(port) == {"0100007F"}, (url, listening_addresses(port))
    finally:
        app.stop()
    out = app.process.output()
    assert out.count("final flush done") == 6, out[-4000:]
    assert "did not take the final flush" not in out, out[-4000:]
    assert list(tmp_path.iterdir()) == []


def test_a_start_that_fails_shows_what_stopped_first_not_the_shutdown_after_it():
    """When one process of ci/up.sh ends, honcho stops the rest: the report keeps the cause."""
    output = ("09:00:00 rng.1    | OSError: [Errno 98] Address already in use\n"
              "09:00:00 system   | rng.1 stopped (rc=1)\n"
              "09:00:00 system   | sending SIGTERM to worker.1 (pid 42)\n"
              + "09:00:01 worker.1 | stopping\n" * 500
              + "09:00:01 system   | worker.1 stopped (rc=-15)\n")
    shown = until_first_stop(output)
    assert shown.endswith("rng.1 stopped (rc=1)") and "Address already in use" in shown
    assert until_first_stop("no process stopped yet\n", chars=4) == "yet\n"

import re
import sys
import time

import pytest
import requests

import dockercoins_common as common
import rng
from localapp import IMAGES, Process, free_port, gunicorn, wait_until


def test_numbers_from_env(monkeypatch):
    monkeypatch.setenv("SOME_COUNT", "7")
    monkeypatch.setenv("SOME_DELAY", "0.5")
    assert common.env_int("SOME_COUNT", 1) == 7
    assert common.env_float("SOME_DELAY", 1.0) == 0.5
    assert common.env_int("UNSET_COUNT", 3) == 3


@pytest.mark.parametrize("raw, message", [("two", "must be an integer, got 'two'"),
                                          ("0", "must be >= 1, got 0")])
def test_a_bad_setting_says_which_and_why(monkeypatch, raw, message):
    monkeypatch.setenv("RNG_CONCURRENCY", raw)
    with pytest.raises(common.ConfigError, match=f"RNG_CONCURRENCY {message}"):
        rng.create_app()


ACCESS_LINE = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /32 HTTP/1\.1" 200 32$', re.M)


def test_one_access_log_line_per_request_by_default():
    """The seed's services print each request; the workshop watches them with kubectl logs."""
    service = gunicorn("rng")
    try:
        for _ in range(3):
            assert requests.get(service.url + "/32", timeout=5).status_code == 200
        wait_until(lambda: len(ACCESS_LINE.findall(service.output())) == 3, 5,
                   what="three access-log lines")
    finally:
        service.stop()


def test_access_log_can_be_turned_off():
    service = gunicorn("hasher", env={"ACCESS_LOG": "false"})
    try:
        assert requests.get(service.url + "/", timeout=5).status_code == 200
        time.sleep(0.5)
        assert '"GET / HTTP/1.1"' not in service.output()
    finally:
        service.stop()


def test_a_bad_access_log_setting_is_refused():
    service = Process("hasher-bad-access-log", [
        sys.executable, "-m", "gunicorn", "-c", str(IMAGES / "common" / "gunicorn.conf.py"),
        "--chdir", str(IMAGES / "hasher"), "hasher:create_app()"],
        env={"PORT": str(free_port()), "ACCESS_LOG": "maybe"})
    try:
        assert service.proc.wait(10) != 0
        assert "ACCESS_LOG must be true or false, got 'maybe'" in service.output()
    finally:
        service.stop()


def test_ops_routes_answer_the_same_json_for_every_service():
    from flask import Flask
    problem = {"live": None, "ready": None}
    readiness = common.Readiness()
    client = common.add_ops_routes(Flask("probe"), readiness,
                                   ready_check=lambda: problem["ready"],
                                   live_check=lambda: problem["live"]).test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}
    problem.update(live="the loop stopped", ready="redis: down")
    dead, unready = client.get("/healthz"), client.get("/readyz")
    assert (dead.status_code, dead.get_json()) == (
        503, {"status": "not alive", "error": "the loop stopped"})
    assert (unready.status_code, unready.get_json()) == (
        503, {"status": "not ready", "error": "redis: down"})
    readiness.start_shutdown()
    assert client.get("/readyz").get_json() == {"status": "shutting down"}

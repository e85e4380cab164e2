import json
import threading
import time

import pytest

import ledger  # images/worker: the heartbeat rate window
import speed
import webui
from localapp import free_port, worker


@pytest.fixture
def client(redis_server):
    return webui.create_app({"TESTING": True, "REDIS_URL": redis_server.url}).test_client()


def test_json_reads_the_seed_keys(client, redis_db):
    redis_db.set("hashes", 1234)
    redis_db.hset("wallet", mapping={"0abc": b"\x01", "0def": b"\x02"})
    data = client.get("/json").get_json()
    assert data["coins"] == 2 and data["hashes"] == 1234
    assert isinstance(data["now"], float)
    assert data["speed"] == 0 and data["workers"] == 0


def test_json_sums_worker_heartbeats(client, redis_db):
    for i, (rate, rng_s) in enumerate([(3.3, 0.1), (1.2, 0.7)]):
        redis_db.set(f"dockercoins:worker:w{i}", json.dumps({
            "rate": rate, "rng_seconds": rng_s, "hasher_seconds": 0.1, "error": None}), ex=5)
    data = client.get("/json").get_json()
    assert data["hashes"] == 0 and data["coins"] == 0
    assert data["workers"] == 2
    assert data["speed"] == pytest.approx(4.5)
    assert data["rng_seconds"] == pytest.approx(0.4)


def test_redis_down_is_a_503_with_the_reason_and_webui_stays_ready():
    app = webui.create_app({"TESTING": True,
                            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = app.test_client()
    response = client.get("/json")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"].startswith("redis unreachable: ") and body["redis"] == "unreachable"
    assert "Connection refused" in body["error"], body  # what is wrong, in redis-py's words
    # Readiness is webui's own: with redis down every replica stays in its Service.
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200  # liveness calls no dependency


def test_dashboard_page_is_served(client):
    response = client.get("/")
    assert response.status_code == 200
    assert 'id="speed"' in response.get_data(as_text=True)


def test_metrics_use_route_templates(client):
    client.get("/json")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_request_duration_seconds_count{method="GET",route="/json",status="200"}' in text


def test_index_html_is_the_dashboard_too(client):
    """The seed serves /index.html, and the workshop fetches it."""
    response = client.get("/index.html")
    assert response.status_code == 200
    assert 'id="speed"' in response.get_data(as_text=True)


class SeedMiner:
    """A miner that writes only the seed's keys, as the seed's own worker does: INCRBY hashes 3
    about once a second, and no heartbeat."""

    def __init__(self, client, step=3):
        self.client, self.step, self.times = client, step, []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.wait(1.0):
            self.client.incrby("hashes", self.step)
            self.times.append(time.monotonic())

    def stop(self):
        self.stopped.set()
        self.thread.join()

    def rate(self):
        return self.step * (len(self.times) - 1) / (self.times[-1] - self.times[0])


def poll(client, seconds):
    """/json once a second, as the page does; every answer."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answers.append(client.get("/json").get_json())
        time.sleep(1.0)
    return answers


def test_a_miner_without_heartbeats_is_not_shown_as_zero(client, redis_db):
    """SPEC: ours reads the seed's data and never shows 0 while hashing goes on."""
    miner = SeedMiner(redis_db)
    try:
        answers = poll(client, 18)
    finally:
        miner.stop()
    assert answers[-1]["workers"] == 0
    assert all(a["speed"] > 0 or a["settling"] for a in answers[1:]), answers
    # Steady state, 15 s after it started: within 3 % of its true rate.
    for answer in answers[-3:]:
        assert answer["speed"] == pytest.approx(miner.rate(), rel=0.03), (answer, miner.rate())
    # It stopped: the speed falls to a true 0 within a few seconds.
    time.sleep(speed.QUIET_SECONDS + 1)
    assert client.get("/json").get_json()["speed"] == 0


def test_heartbeats_stay_the_exact_path_beside_another_miner(
        client, redis_server, redis_db, rng_service, hasher_service):
    mine = worker(rng_service.url + "/32", hasher_service.url + "/", redis_server.url)
    try:
        # A new worker's rate ramps up over its first window (it counts as idle before it
        # started, so a scale-up never overshoots): poll past that window and a flush.
        alone = poll(client, ledger.RATE_WINDOW_SECONDS + 3)
        # Only our worker: everything the counter gained is explained by its heartbeat.
        assert [a["unreported_speed"] for a in alone[1:]] == [0.0] * (len(alone) - 1)
        assert all(a["speed"] > 3 for a in alone[-2:]), alone
        miner = SeedMiner(redis_db)
        try:
            together = poll(client, 18)
        finally:
            miner.stop()
    finally:
        mine.stop()
    last = together[-1]
    assert last["workers"] == 1
    assert last["unreported_speed"] == pytest.approx(miner.rate(), rel=0.05), last
    assert last["speed"] == pytest.approx(
        last["unreported_speed"] + 1 / 0.3, rel=0.05), last

import json

import pytest

import webui
from support import free_port


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


def test_redis_down_is_a_503_with_a_json_error():
    app = webui.create_app({"TESTING": True,
                            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = app.test_client()
    response = client.get("/json")
    assert response.status_code == 503
    assert "redis unreachable" in response.get_json()["error"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200  # liveness calls no dependency


def test_dashboard_page_is_served(client):
    response = client.get("/")
    assert response.status_code == 200
    assert 'id="speed"' in response.get_data(as_text=True)


def test_metrics_use_route_templates(client):
    client.get("/json")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_request_duration_seconds_count{method="GET",route="/json",status="200"}' in text

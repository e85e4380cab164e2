import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import hasher


@pytest.fixture
def client():
    return hasher.create_app({"TESTING": True}).test_client()


def test_banner(client):
    assert client.get("/").get_data(as_text=True).startswith("HASHER running on ")


def test_digest_matches_hashlib(client):
    body = os.urandom(32)
    response = client.post("/", data=body, content_type="application/octet-stream")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == hashlib.sha256(body).hexdigest()  # no newline


def test_empty_body_hashes_too(client):
    assert client.post("/", data=b"").get_data(as_text=True) == hashlib.sha256(b"").hexdigest()


def test_body_past_the_cap_is_413(client):
    limit = hasher.create_app().config["MAX_CONTENT_LENGTH"]
    assert client.post("/", data=b"x" * limit).status_code == 200
    response = client.post("/", data=b"x" * (limit + 1))
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_wrong_method_is_405(client, method):
    assert getattr(client, method)("/").status_code == 405


def test_twenty_concurrent_hashes_overlap(hasher_service):
    bodies = [os.urandom(32) for _ in range(20)]
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(
            lambda body: requests.post(hasher_service.url, data=body, timeout=10).text, bodies))
    elapsed = time.monotonic() - started
    assert answers == [hashlib.sha256(body).hexdigest() for body in bodies]
    # One after the other would take 20 x 0.1 s; in parallel it is a small part of that.
    assert elapsed < 20 * hasher.SLEEP_SECONDS / 4, elapsed


def test_413_from_the_real_server(hasher_service):
    response = requests.post(hasher_service.url, data=b"x" * (1024 * 1024), timeout=10)
    assert response.status_code == 413

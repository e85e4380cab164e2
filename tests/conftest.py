"""Fixtures shared by every test folder: real redis-server and real gunicorn processes."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support import IMAGES, RedisServer, gunicorn  # noqa: E402

# The service modules import like the images do: module beside dockercoins_common.
for folder in ("common", "rng", "hasher", "webui", "worker"):
    sys.path.insert(0, str(IMAGES / folder))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.close()


@pytest.fixture
def redis_db(redis_server):
    client = redis_server.client()
    client.flushall()
    return client


@pytest.fixture(scope="module")
def rng_service():
    proc = gunicorn("rng")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def hasher_service():
    proc = gunicorn("hasher")
    yield proc
    proc.stop()

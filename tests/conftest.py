"""Fixtures shared by every test folder: real redis-server and real gunicorn processes."""
import pytest

# Assertions in the helpers package (shared test bodies among them) report like a test's own.
pytest.register_assert_rewrite("helpers")

from helpers.services import RedisServer  # noqa: E402
from localapp import gunicorn  # noqa: E402


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

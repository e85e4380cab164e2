"""A container registry on loopback for the chart job (helpers.registry)."""
import pytest

from helpers.registry import docker_registry


@pytest.fixture
def registry(tmp_path):
    with docker_registry(tmp_path) as address:
        yield address

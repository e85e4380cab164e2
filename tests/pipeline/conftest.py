"""A container registry on loopback for the chart job: Debian's docker-registry (the
distribution registry; ci/tools.sh installs it), started on a free port, no auth, plain HTTP."""
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml

REGISTRY = "/usr/bin/docker-registry"


@pytest.fixture
def registry(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry")}},
        "http": {"addr": f"127.0.0.1:{port}"}}))
    log = tmp_path / "registry.log"
    with open(log, "w") as out:
        process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"docker-registry did not start:\n{log.read_text()}")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

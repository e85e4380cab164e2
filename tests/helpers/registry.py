"""A container registry on loopback: Debian's docker-registry (the distribution registry;
ci/tools.sh installs it), on a free port, no auth, plain HTTP. For helm push/pull and the
pipeline's chart job."""
import contextlib
import shutil
import subprocess
import urllib.request

import pytest
import yaml

from localapp import free_port, wait_until

REGISTRY = "/usr/bin/docker-registry"


@contextlib.contextmanager
def docker_registry(folder):
    """A running registry with its storage and log in `folder`; yields its host:port."""
    if not shutil.which(REGISTRY):
        pytest.fail(f"{REGISTRY} is missing: run ci/tools.sh (it apt-installs docker-registry)")
    port = free_port()
    config = folder / "registry.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(folder / "registry")}},
        "http": {"addr": f"127.0.0.1:{port}"}}))
    log = folder / "registry.log"
    with open(log, "w") as out:
        process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=out,
                                   stderr=subprocess.STDOUT)

    def answers():
        if process.poll() is not None:
            raise AssertionError(f"docker-registry exited:\n{log.read_text()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as answer:
            return answer.status == 200
    try:
        try:
            wait_until(answers, 20, what="docker-registry answering /v2/")
        except TimeoutError as error:
            pytest.fail(f"docker-registry did not start ({error}):\n{log.read_text()}")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""The worker's HTTP calls (http_calls.py through a Miner), against a small HTTP/1.1 server on
loopback that records which connection each request came on: a new connection per rng call
(kube-proxy balances connections), one kept connection for hasher, retries on 5xx, and a
redirect or a 4xx taken as an error, never followed."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

import worker as worker_module
from http_calls import InClusterAdapter, StageError
from localapp import free_port


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive unless the client says close

    def do_GET(self):
        self.server.seen.append((self.path, self.client_address[1]))
        if self.path == "/32":
            self.answer(200, b"r" * 32)
        elif self.path == "/moved":
            self.answer(302, b"", ("Location", "/32"))
        elif self.path == "/flaky":
            self.server.failures_left -= 1
            self.answer(503, b"busy") if self.server.failures_left >= 0 else self.answer(
                200, b"ok")
        else:
            self.answer(404, b"no such path")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.path, self.client_address[1]))
        self.answer(200, b"digest of " + body)

    def answer(self, status, body, *headers):
        self.send_response(status)
        if self.close_connection:  # the request said close: say so, as gunicorn does (RFC 9112
            headers += (("Connection", "close"),)  # 9.6), or the client may reuse it meanwhile
        for name, value in (("Content-Length", str(len(body))), *headers):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def recording_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.seen, httpd.failures_left = [], 0
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def servers():
    """Two of them, one for rng and one for hasher, as they are two Services."""
    servers = recording_server(), recording_server()
    yield servers
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def miner_for(servers, rng_path="/32"):
    """A Miner on the recording servers (its redis is never called)."""
    settings = worker_module.Settings(rng_url=servers[0].url + rng_path,
                                      hasher_url=servers[1].url + "/")
    return worker_module.Miner(settings, redis=redis.Redis(port=free_port()))


def test_rng_gets_a_new_connection_per_call_and_hasher_keeps_one(servers):
    miner = miner_for(servers)
    for _ in range(3):
        random_bytes = miner.call("rng", miner.rng_request)
        assert random_bytes == b"r" * 32
        assert miner.call("hasher", miner.hasher_request, random_bytes) == (
            b"digest of " + b"r" * 32)
    rng_ports = [port for _, port in servers[0].seen]
    hasher_ports = [port for _, port in servers[1].seen]
    assert len(set(rng_ports)) == 3, "rng must see a new connection each call"
    assert len(hasher_ports) == 3 and len(set(hasher_ports)) == 1, (
        "hasher's connection must go back to the pool and be used again")
    assert isinstance(miner.http.get_adapter(servers[1].url), InClusterAdapter)
    assert not isinstance(miner.http.get_adapter("https://hasher/"), InClusterAdapter)


def test_5xx_is_retried_until_it_answers(servers):
    servers[0].failures_left = 2
    miner = miner_for(servers, "/flaky")
    assert miner.call("rng", miner.rng_request) == b"ok"
    assert [path for path, _ in servers[0].seen] == ["/flaky"] * 3


@pytest.mark.parametrize("path, status", [("/moved", 302), ("/nowhere", 404)])
def test_a_redirect_or_4xx_is_an_error_with_its_status(servers, path, status):
    miner = miner_for(servers, path)
    with pytest.raises(StageError, match=f"rng: HTTP {status}") as error:
        miner.call("rng", miner.rng_request)
    assert error.value.stage == "rng"
    assert [p for p, _ in servers[0].seen] == [path], "a redirect is not followed"



def test_every_failed_attempt_is_counted_by_stage(servers):
    """The errors metric counts attempts: the two 503s the retries absorbed, then a 404 once
    (not retried), then a 503 that never ends, once per attempt (1 + 5 retries)."""
    servers[0].failures_left = 2
    miner = miner_for(servers, "/flaky")
    assert miner.call("rng", miner.rng_request) == b"ok"
    assert miner.failures["rng"].count == 2
    before = metric_errors("rng")
    missing = miner_for(servers, "/nowhere")
    with pytest.raises(StageError):
        missing.call("rng", missing.rng_request)
    assert missing.failures["rng"].count == 1
    servers[0].failures_left = 100
    busy = miner_for(servers, "/flaky")
    with pytest.raises(StageError, match="rng: .*503"):
        busy.call("rng", busy.rng_request)
    assert busy.failures["rng"].count == 6
    assert metric_errors("rng") - before == 7
    assert miner.failures["hasher"].count == 0


def metric_errors(stage):
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value("dockercoins_worker_errors_total", {"stage": stage})

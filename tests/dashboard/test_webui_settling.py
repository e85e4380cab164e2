"""webui's /json right after redis comes back: the workers' heartbeats (TTL 5 s) may have
expired and not yet been written again, so their sum would read low. /json says "settling"
for SETTLE_SECONDS, and the page draws no point then rather than a false dip."""
import time

import webui
from helpers.services import RedisServer


def test_json_settles_after_redis_comes_back(tmp_path):
    server = RedisServer(tmp_path)
    try:
        client = webui.create_app({"TESTING": True, "REDIS_URL": server.url}).test_client()
        assert client.get("/json").get_json()["settling"] is False
        server.stop()
        assert client.get("/json").status_code == 503
        server.start()
        back = time.monotonic()
        assert client.get("/json").get_json()["settling"] is True
        while time.monotonic() - back < webui.SETTLE_SECONDS + 0.2:
            time.sleep(0.1)
        assert client.get("/json").get_json()["settling"] is False
    finally:
        server.close()

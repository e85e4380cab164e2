"""A real redis-server on loopback, for the service tests."""
from pathlib import Path

from localapp import Process, free_port, wait_until


class RedisServer:
    """A real redis-server on a free loopback port, with a data dir so it can restart with
    its data (SHUTDOWN SAVE, then start again). `args`: more redis-server arguments, such as
    a maxmemory."""

    def __init__(self, data_dir, args=()):
        self.port = free_port()
        self.dir = Path(data_dir)
        self.args = list(args)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self):
        self.process = Process(f"redis-{self.port}", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.dir), "--dbfilename", "dump.rdb", *self.args])
        wait_until(self.ping, 10, what="redis PING")

    def ping(self):
        return self.client().ping()

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def stop(self):
        """Stop with the data saved, as a redis restart with persistence does."""
        try:
            self.client().shutdown(save=True)
        except Exception:  # redis closes the connection as it shuts down
            pass
        self.process.stop()

    def close(self):
        if self.process:
            self.process.stop()

"""The worker's exactly-once ledger: loops done but not yet in redis, the flush that hands
them over, and the heartbeat that tells the dashboard this worker's speed.

Counting is exact: loops not yet in redis are kept until redis takes them, and each flush
carries a sequence number that redis checks, so a flush retried after a lost reply is
counted once.
"""
import json
import threading
import time
from collections import deque

from redis.exceptions import OutOfMemoryError

RATE_WINDOW_SECONDS = 6.0       # the speed and latencies in the heartbeat cover this long
HEARTBEAT_TTL_SECONDS = 5       # a worker gone quiet this long no longer counts as active
FLUSH_SEQ_TTL_SECONDS = 3600

# One Lua script, so the count, the coins, the sequence check and the heartbeat land
# together or not at all.
FLUSH_SCRIPT = """
local seq = tonumber(ARGV[1])
local applied = seq > tonumber(redis.call('GET', KEYS[2]) or '0')
if applied then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
return applied and 1 or 0
"""


class FlushBusy(Exception):
    """The previous flush is still waiting for redis."""


class RedisFull(OutOfMemoryError):
    """redis refused the flush with OOM: it reached its maxmemory under `noeviction`. The
    script's first write is refused before anything is written, so the batch is kept whole."""


class Ledger:
    """What one worker (id `worker_id`) has mined and what redis has confirmed.

    record() counts a loop; flush() sends the pending loops and coins to redis with a
    heartbeat, and raises (FlushBusy, RedisFull, or redis-py's errors) when redis did not
    confirm: the batch then goes again, unchanged, next time."""

    def __init__(self, redis, worker_id, window=RATE_WINDOW_SECONDS):
        self.worker_id, self.window = worker_id, window
        self.script = redis.register_script(FLUSH_SCRIPT)
        self.lock = threading.Lock()        # guards the counts below
        self.flush_lock = threading.Lock()  # one flush at a time
        self.pending_count = 0              # loops done, not yet handed to redis
        self.pending_coins = {}
        self.in_flight = None               # (seq, count, coins) sent but not confirmed
        self.seq = 0
        self.loops_done = 0
        self.closed = False                 # after the final flush nothing more is counted
        self.started = time.monotonic()     # when this worker began to mine (its rate window)
        self.recent = deque()               # (done at, rng seconds, hasher seconds)
        self.last_error = None

    def record(self, coin, rng_seconds, hasher_seconds):
        """Count one loop; coin is (digest, random bytes) or None. False once closed."""
        with self.lock:
            if self.closed:
                return False
            self.pending_count += 1
            self.loops_done += 1
            if coin:
                self.pending_coins[coin[0]] = coin[1]
            self.recent.append((time.monotonic(), rng_seconds, hasher_seconds))
            return True

    def close(self):
        with self.lock:
            self.closed = True

    @property
    def settled(self):
        return not (self.in_flight or self.pending_count or self.pending_coins)

    @property
    def unconfirmed(self):
        return self.pending_count + (self.in_flight[1] if self.in_flight else 0)

    def flush(self, wait_seconds=-1):
        if not self.flush_lock.acquire(timeout=wait_seconds):
            raise FlushBusy("the previous flush is still waiting for redis")
        try:
            with self.lock:
                if self.in_flight is None and (self.pending_count or self.pending_coins):
                    self.seq += 1
                    self.in_flight = (self.seq, self.pending_count, self.pending_coins)
                    self.pending_count, self.pending_coins = 0, {}
                heartbeat = self.heartbeat()
            seq, count, coins = self.in_flight or (0, 0, {})
            coin_args = [item for pair in coins.items() for item in pair]
            try:
                self.script(
                    keys=["hashes", f"dockercoins:flushseq:{self.worker_id}",
                          f"dockercoins:worker:{self.worker_id}", "wallet"],
                    args=[seq, count, FLUSH_SEQ_TTL_SECONDS, json.dumps(heartbeat),
                          HEARTBEAT_TTL_SECONDS, *coin_args])
            except OutOfMemoryError as error:
                with self.lock:
                    kept = self.unconfirmed, len(coins) + len(self.pending_coins)
                raise RedisFull("redis is full (OOM): keeping %d pending hashes and %d coins "
                                "until it has room (%s)" % (*kept, error)) from error
            self.in_flight = None
        finally:
            self.flush_lock.release()

    def heartbeat(self):
        """What the dashboard shows about this worker. Call with self.lock held."""
        now = time.monotonic()
        while self.recent and self.recent[0][0] < now - self.window:
            self.recent.popleft()
        # A stopping worker claims no speed: its last heartbeat outlives it by up to the
        # TTL, and held at its old rate it summed with the survivors' rising ones past the
        # true rate (12.0/s shown for a true 9.9 going from 6 workers to 2).
        rate = 0.0 if self.closed else window_rate(
            [r[0] for r in self.recent], now, self.started, self.window)
        return {"id": self.worker_id, "rate": rate,
                "rng_seconds": median_or_none([r[1] for r in self.recent]),
                "hasher_seconds": median_or_none([r[2] for r in self.recent]),
                "hashes": self.loops_done, "error": self.last_error, "at": time.time()}


def window_rate(done_times, now, started, window):
    """Loops per second over the last `window` seconds, the same window for every worker.

    A worker younger than the window counts as idle before it started, so the sum over
    workers is the true average over one window: after a scale change it moves from the old
    total to the new one and never overshoots both. (Rated over its own short life instead,
    a young worker counted at full speed for the whole window, and the sum read up to 30%
    high.)"""
    return recent_rate(done_times, now) * min(1.0, max(0.0, now - started) / window)


def recent_rate(done_times, now):
    """Loops per second from completion times. Counting whole loops in a fixed window jitters
    (the seed's 4-4-4-0); the time between the first and last loop does not. A gap longer
    than a usual loop means hashing slowed or stopped, so it counts too."""
    if len(done_times) < 2:
        return 0.0
    loops = len(done_times) - 1
    span = done_times[-1] - done_times[0]
    period = span / loops
    span += max(0.0, (now - done_times[-1]) - period)
    return loops / span if span > 0 else 0.0


def median_or_none(values):
    """The median, rounded to 0.1 ms; None for no values. (Not statistics.median: that module
    imports decimal and fractions, 0.6 MiB of the worker's memory for one sort.)"""
    if not values:
        return None
    ordered, middle = sorted(values), len(values) // 2
    median = ordered[middle] if len(values) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return round(median, 4)

"""The mining speed, read from redis: the seed's counters, the workers' heartbeats, and the
slope of the hashes that no heartbeat explains (miners that send none, such as the seed's own)."""
import collections
import json
import logging
import statistics
import threading
import time

import redis

HEARTBEAT_PATTERN = "dockercoins:worker:*"  # written by each worker, see worker.py
RECENT_ERROR_SECONDS = 10.0
# After redis was unreachable, the workers' heartbeats (TTL 5 s) may have expired. Each worker
# writes its own again within about a second of its next flush, so for this long the sum of
# heartbeats may miss some workers: /json says "settling" and the page draws no point rather
# than a false fall in speed.
SETTLE_SECONDS = 2.5

# Miners that send no heartbeat (the seed's own worker writes only `hashes` and `wallet`): their
# speed is the slope of the part of `hashes` that no heartbeat explains, sampled this often,
# fitted over this window. They add to `hashes` about once a second, so a counter that has not
# moved for QUIET_SECONDS means they stopped.
SAMPLE_SECONDS = 0.25  # only while such a miner is at work (see Sampler)
UNREPORTED_WINDOW_SECONDS = 20.0
MIN_SPAN_SECONDS = 2.0
QUIET_SECONDS = 3.0
SAMPLER_IDLE_SECONDS = 60.0  # the sampler stops this long after the last /json
FORGET_WORKER_SECONDS = 600.0

# One atomic read: the counter and every heartbeat at the same instant, so the heartbeats'
# totals (each set in the same script as its worker's INCRBY) match the counter exactly.
SNAPSHOT_SCRIPT = """
local keys = redis.call('KEYS', ARGV[1])
local beats = {}
if #keys > 0 then beats = redis.call('MGET', unpack(keys)) end
return {redis.call('HLEN', 'wallet'), redis.call('GET', 'hashes') or false, beats}
"""


def take_snapshot(snapshot):
    """(coins, hashes, heartbeats) from one atomic read of redis."""
    coins, hashes, raw_beats = snapshot(args=[HEARTBEAT_PATTERN])
    return int(coins), int(hashes or 0), [json.loads(raw) for raw in raw_beats if raw]


def read_numbers(snapshot, unreported):
    """The seed's keys, plus what the workers' heartbeats say about speed and latency, plus
    the speed of any miner that sends no heartbeat."""
    coins, hashes, beats = take_snapshot(snapshot)
    now = time.time()
    unreported.add(hashes, beats)
    other = unreported.rate()
    # The sum of each worker's own loop rate: exact, unlike a difference of a counter that is
    # flushed once a second (the seed's 4-4-4-0).
    reported = sum(beat["rate"] for beat in beats)
    return {
        "coins": coins,
        "hashes": hashes,
        "now": now,
        "speed": round(reported + (other or 0.0), 3),
        "unreported_speed": None if other is None else round(other, 3),
        "workers": len(beats),
        "rng_seconds": mean_of(beat["rng_seconds"] for beat in beats),
        "hasher_seconds": mean_of(beat["hasher_seconds"] for beat in beats),
        "errors": sorted({beat["error"]["stage"] for beat in beats if beat.get("error")
                          and now - beat["error"]["at"] < RECENT_ERROR_SECONDS}),
        # Hashing goes on but nothing says how fast yet: the page draws no point, not a 0.
        "warming": other is None and not beats,
    }


class UnreportedRate:
    """Hashes per second that no heartbeat explains: miners that write the seed's keys and
    send no heartbeat, such as the seed's own worker.

    Each heartbeat carries its worker's total (`hashes`), set in the same redis script as the
    worker's INCRBY. So `hashes` minus the sum of every total seen stays constant while only
    our workers mine, and its slope (least squares over UNREPORTED_WINDOW_SECONDS) is the
    speed of the others. A worker that stops keeps its last total here, so its heartbeat
    expiring moves nothing. Heartbeats without a total (another version) explain nothing
    reliably: then this reports 0 and the heartbeats alone give the speed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples = collections.deque()  # (monotonic seconds, unexplained hashes)
        self.totals = {}  # worker id -> (its total, when last seen)
        self.retired = 0  # totals of workers forgotten after FORGET_WORKER_SECONDS
        self.ignore_until = 0.0
        self.blind = False
        self.last_hashes = 0

    def hold(self):
        """redis failed. During an outage and just after it the workers' totals and the
        counter move in separate flushes, so start again once things settle."""
        with self.lock:
            self.samples.clear()
            self.ignore_until = time.monotonic() + SETTLE_SECONDS

    def add(self, hashes, beats):
        now = time.monotonic()
        with self.lock:
            self.blind = any(not isinstance(beat.get("hashes"), int) for beat in beats)
            if self.blind or now < self.ignore_until:
                self.samples.clear()
                return
            for beat in beats:
                self.totals[beat["id"]] = (beat["hashes"], now)
            for worker, (total, seen) in list(self.totals.items()):
                if now - seen > FORGET_WORKER_SECONDS:
                    self.retired += total
                    del self.totals[worker]
            unexplained = hashes - self.retired - sum(t for t, _ in self.totals.values())
            if self.samples and hashes < self.last_hashes:
                self.samples.clear()  # the counter was reset (FLUSHALL, a new redis)
            self.last_hashes = hashes
            self.samples.append((now, unexplained))
            while self.samples and self.samples[0][0] < now - UNREPORTED_WINDOW_SECONDS:
                self.samples.popleft()

    def moving(self):
        """Whether something no heartbeat explains added to `hashes` in the window."""
        with self.lock:
            return any(u != self.samples[0][1] for _, u in self.samples)

    def rate(self):
        """Hashes per second; 0.0 when the unexplained part stands still, None when it moves
        but the window is still too short to say how fast."""
        with self.lock:
            samples = list(self.samples)
            blind = self.blind
        if blind or len(samples) < 2 or all(u == samples[0][1] for _, u in samples):
            return 0.0
        last_t, last_u = samples[-1]
        if samples[0][0] <= last_t - QUIET_SECONDS and all(
                u == last_u for t, u in samples if t >= last_t - QUIET_SECONDS):
            return 0.0  # they stopped
        # From the last still sample before the first move, so a miner that just started is
        # not averaged with the time before it.
        first_move = next(i for i, (_, u) in enumerate(samples) if u != samples[0][1])
        samples = samples[first_move - 1:]
        if samples[-1][0] - samples[0][0] < MIN_SPAN_SECONDS:
            return None
        return max(0.0, least_squares_slope(samples))


def least_squares_slope(samples):
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_u = sum(u for _, u in samples) / n
    den = sum((t - mean_t) ** 2 for t, _ in samples)
    return sum((t - mean_t) * (u - mean_u) for t, u in samples) / den if den else 0.0


class Sampler:
    """Samples redis every SAMPLE_SECONDS while someone polls /json and a miner without
    heartbeats is at work, so its speed is fitted on enough points. With our workers alone it
    never runs: the page's own polls show nothing moves, and cost nothing more."""

    def __init__(self, sample, on_error):
        self.sample, self.on_error = sample, on_error
        self.lock = threading.Lock()
        self.last_poke = 0.0
        self.thread = None

    def poke(self):
        with self.lock:
            self.last_poke = time.monotonic()
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="sampler", daemon=True)
                self.thread.start()

    def run(self):
        while True:
            with self.lock:
                if time.monotonic() - self.last_poke > SAMPLER_IDLE_SECONDS:
                    self.thread = None
                    return
            try:
                self.sample()
            except redis.RedisError:
                self.on_error()
            except Exception:  # never let the sampler die silently: log and go on
                logging.getLogger("webui").exception("sampling redis failed")
            time.sleep(SAMPLE_SECONDS)


def mean_of(values):
    values = [value for value in values if value is not None]
    return round(statistics.fmean(values), 4) if values else None

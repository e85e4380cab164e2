"""The workshop's latency probe, run as it types it: `httping -c 3 <url>` (Debian's httping,
which sends HEAD / once a second), and its figures read from the output."""
import re
import statistics
import subprocess

PING_LINE = re.compile(r"connected to \S+ \(\d+ bytes\), seq=\d+ time=\s*([0-9.]+) ms")


def httping(url, count=3, timeout=60):
    """The median of `count` sequential pings, in seconds (httping prints milliseconds).
    Fails when httping does not answer `count` times: a connect error is no figure."""
    proc = subprocess.run(["httping", "-c", str(count), url], capture_output=True, text=True,
                          timeout=timeout)
    times = [float(ms) / 1000 for ms in PING_LINE.findall(proc.stdout)]
    assert len(times) == count, f"httping {url}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return statistics.median(times)


def culprit(latencies, service_seconds=0.1):
    """The workshop's reasoning: each service does 0.1 s of work, so the one whose probe waits
    several times that, and far longer than the other, is where calls queue. None if none is."""
    slowest = max(latencies, key=latencies.get)
    others = [v for k, v in latencies.items() if k != slowest]
    if latencies[slowest] > 3 * service_seconds and all(latencies[slowest] > 5 * v for v in others):
        return slowest
    return None

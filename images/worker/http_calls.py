"""The worker's HTTP calls to rng and hasher: one requests Session, timeouts and retries.

CPU matters here: the worker makes two calls per hash, and requests, the design's client,
does more per call than the urllib3 worker it replaced. Three choices below bring the worker
back to within a few percent of that one's CPU per hash (`ci/bench.sh --worker-baseline`):
requests are prepared once, http:// goes through InClusterAdapter, and calls are sent
through the mounted adapter rather than Session.send."""
import lean_requests  # noqa: F401  (first: it keeps charset_normalizer out of requests)
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class Failures:
    """Failed attempts at one stage's calls: `count`, also added to `metric` (a Prometheus
    counter). Each attempt counts, the ones urllib3 retries too: at FAILURE_RATE=0.2 the
    retries absorb nearly every failure, and the errors metric still shows them."""

    def __init__(self, metric):
        self.metric, self.count = metric, 0

    def add(self):
        self.count += 1
        self.metric.inc()


class CountedRetry(Retry):
    """urllib3's Retry that adds each failed attempt to `failures` (a Failures). urllib3
    calls increment() once per failed attempt, the last one included, and new() for each
    next step, which keeps `failures`."""
    failures = None

    def new(self, **kw):
        retry = super().new(**kw)
        retry.failures = self.failures
        return retry

    def increment(self, *args, **kwargs):
        if self.failures is not None:
            self.failures.add()
        return super().increment(*args, **kwargs)


class StageError(Exception):
    """A call that failed after its retries, with the stage (rng, hasher, redis) it was in."""

    def __init__(self, stage, error):
        super().__init__(f"{stage}: {error}")
        self.stage = stage


class InClusterAdapter(HTTPAdapter):
    """HTTPAdapter for plain http:// between the app's own services, which set no cookies
    and sit behind no proxy. It overrides three of the methods requests exposes for
    subclassing, to skip the proxy lookups (each parses the URL again) and the cookie jar
    and header copy made for every response."""

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        return self.poolmanager.connection_from_url(request.url)  # plain http: no TLS

    def request_url(self, request, proxies):
        return request.path_url  # no proxy: the request line carries the path only

    def build_response(self, req, resp):
        response = requests.Response()
        response.status_code, response.reason = resp.status, resp.reason
        response.headers = resp.headers  # urllib3's HTTPHeaderDict: case-insensitive too
        response.raw, response.url, response.request, response.connection = (
            resp, req.url, req, self)
        return response


def retries(failures=None):
    """Retries with exponential backoff on connection errors and 5xx; each failed attempt
    goes to `failures` (a Failures) when given."""
    retry = CountedRetry(total=5, connect=5, read=2, status=5, backoff_factor=0.1,
                         backoff_max=2.0, status_forcelist=(500, 502, 503, 504),
                         allowed_methods=None, respect_retry_after_header=False)
    retry.failures = failures
    return retry


def adapter(url, retry):
    """InClusterAdapter for http://; https:// keeps the standard adapter (TLS verification)."""
    kind = InClusterAdapter if url.lower().startswith("http://") else HTTPAdapter
    return kind(pool_connections=4, pool_maxsize=2, max_retries=retry)


def http_session():
    """One requests Session with retries (see retries) in its adapters. trust_env off: this
    worker takes no proxy or netrc from the environment. Timeouts are per call."""
    session = requests.Session()
    session.trust_env = False
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter(scheme, retries()))
    return session


def prepare(session, method, url, headers, failures=None):
    """A request built once and sent many times: building it per call (Session.request
    merges the session's settings and parses the URL each time) cost about a third more
    CPU per hash. With `failures` (a Failures), the request's URL gets an adapter of its own
    whose retries count each failed attempt there."""
    prepared = session.prepare_request(requests.Request(method, url, headers=headers))
    if failures is not None:
        session.mount(prepared.url, adapter(prepared.url, retries(failures)))
    return prepared


def call(session, stage, prepared, timeout, body=None, failures=None):
    """Send a prepared request (with body, if given, set on `prepared` itself: only the loop
    thread sends); the response body (bytes), or StageError once the retries are spent.
    `timeout` is (connect, read) seconds. A failure the retries did not see (an answer that
    is not retried, such as a 4xx, or a broken body) is added to `failures` here.

    It goes through the adapter the Session mounts for its URL (Session.get_adapter and
    HTTPAdapter.send, both public API). Session.send would add only what this worker has
    no use for (redirects, which rng and hasher never send, so a 3xx is an error; cookies;
    hooks; proxies) at about 4% more CPU per hash. stream=True and one raw read take the
    small body in one go (response.content reads it in chunks through a generator);
    reading to the end hands the connection back to the pool."""
    if body is not None:
        prepared.prepare_body(body, None)
    seen = failures.count if failures is not None else 0
    try:
        response = session.get_adapter(prepared.url).send(prepared, timeout=timeout,
                                                          stream=True)
        content = response.raw.read(decode_content=True)
        if response.status_code != 200:
            raise StageError(stage, f"HTTP {response.status_code}: {content[:200]!r}")
    except (requests.RequestException, urllib3.exceptions.HTTPError, StageError) as error:
        if failures is not None and failures.count == seen:
            failures.add()
        if isinstance(error, StageError):
            raise
        raise StageError(stage, error) from error
    return content

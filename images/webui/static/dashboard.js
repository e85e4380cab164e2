// DockerCoins dashboard. Polls json once a second and draws exactly what it says.
//
// The speed is computed by the server from the workers' heartbeats: each worker measures its
// own loop rate from loop completion times over the same last 6 s, and webui sums them. The page never
// differences the `hashes` counter itself: that counter is flushed once a second, and
// differencing it is what made the seed's graph read 4-4-4-0 for a steady 3.33.
//
// Beside the speed graph: the release's replicas (ready/desired, from webui's watch of the
// Kubernetes API, or from the heartbeats under ci/up.sh) and the model line they predict.
//
// When redis or webui cannot be reached, or redis is full, the page says so, keeps the last
// known numbers (greyed, marked as such) and leaves a gap in the graph: it never draws a false 0.
(function () {
  "use strict";

  const POLL_MS = 1000;
  const TIMEOUT_MS = 2500;        // no answer by then: webui is unreachable
  const HISTORY_SECONDS = 300;    // the graphs show the last five minutes
  const QUEUE_SECONDS = 0.2;      // rng and hasher each work 0.1 s; past twice that, calls queue
  // The bottleneck model of lab/dockercoins_lab/scaling.py: a worker loops in 0.3 s (sleep, rng, hasher), so
  // 3.33 hashes/s; one rng serves one call at a time, 0.1 s each, so 10 calls/s.
  const PER_WORKER = 1 / 0.3, PER_RNG = 10;

  const $ = (id) => document.getElementById(id);
  const style = getComputedStyle(document.documentElement);
  const colour = (name) => style.getPropertyValue(name).trim();
  const COLOURS = {
    text: colour("--text"), axis: colour("--axis"), grid: colour("--grid"),
    speed: colour("--speed"), rng: colour("--rng"), hasher: colour("--hasher"),
    model: colour("--model"),
  };
  const clockTime = (epochSeconds) => new Date(epochSeconds * 1000).toLocaleTimeString("en-GB");
  // The graphs are canvases: their text follows the page's root size (see dashboard.css).
  const REM = parseFloat(style.fontSize) || 20;
  const FONT_FAMILY = "'DejaVu Sans', 'Liberation Sans', Arial, sans-serif";
  const AXIS_FONT = `${Math.round(0.8 * REM)}px ${FONT_FAMILY}`;
  const LABEL_FONT = `bold ${Math.round(0.8 * REM)}px ${FONT_FAMILY}`;

  // What the graphs draw; null is a gap (unreachable), never a 0. Tests read it.
  const history = {t: [], speed: [], model: [], rng: [], hasher: []};
  const page = {state: "connecting", lastGood: null, downSince: null, clockOffset: 0};
  window.dockercoins = {history, page, colours: COLOURS, charts: {}};

  // --- the graphs (uPlot, vendored in static/vendor/uplot) ---------------------------
  function axes(yLabel, yValues) {
    const common = {
      stroke: COLOURS.axis, font: AXIS_FONT, labelFont: LABEL_FONT,
      grid: {stroke: COLOURS.grid, width: 1}, ticks: {stroke: COLOURS.grid, width: 1},
    };
    return [
      {...common, label: "time", labelSize: 1.3 * REM, size: 2 * REM, space: 5.5 * REM,
       values: (u, ticks) => ticks.map(clockTime)},
      {...common, label: yLabel, labelSize: 1.4 * REM, size: 3.5 * REM, values: yValues},
    ];
  }

  function makeChart(element, yLabel, minTop, series, yValues) {
    const rect = element.getBoundingClientRect();
    const chart = new uPlot({
      width: Math.max(200, rect.width), height: Math.max(120, rect.height),
      legend: {show: false},  // the captions name the lines, in their colours
      cursor: {show: false},
      scales: {
        x: {time: true},
        // From 0, so a plateau looks like one, with a little headroom above the data.
        y: {range: (u, min, max) => [0, Math.max(minTop, (max || 0) * 1.2)]},
      },
      axes: axes(yLabel, yValues),
      series: [{}, ...series.map((s) => ({
        label: s.label, stroke: s.stroke, width: s.width || 3, spanGaps: false,
        dash: s.dash, points: {show: false},
      }))],
    }, [history.t, ...series.map((s) => history[s.key])], element);
    new ResizeObserver(() => {
      const r = element.getBoundingClientRect();
      chart.setSize({width: Math.max(200, r.width), height: Math.max(120, r.height)});
    }).observe(element);
    return chart;
  }

  const charts = window.dockercoins.charts;
  charts.speed = makeChart($("speed-chart"), "hashes/s", 1, [
    {key: "speed", label: "hashes/s", stroke: COLOURS.speed, width: 4},
    {key: "model", label: "model", stroke: COLOURS.model, width: 3, dash: [12, 8]},
  ], (u, ticks) => ticks.map((v) => formatAxis(v)));
  charts.latency = makeChart($("latency-chart"), "seconds", 0.3, [
    {key: "rng", label: "rng", stroke: COLOURS.rng},
    {key: "hasher", label: "hasher", stroke: COLOURS.hasher},
  ], (u, ticks) => ticks.map((v) => (v === 0 ? "0" : v.toFixed(v >= 1 ? 1 : 2)) + " s"));

  function formatAxis(v) {
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }

  function redraw() {
    const oldest = history.t.length ? history.t[history.t.length - 1] - HISTORY_SECONDS : 0;
    while (history.t.length && history.t[0] < oldest) {
      for (const key of Object.keys(history)) history[key].shift();
    }
    charts.speed.setData([history.t, history.speed, history.model]);
    charts.latency.setData([history.t, history.rng, history.hasher]);
  }

  function addPoint(t, speed, rng, hasher, model = null) {
    const last = history.t.length ? history.t[history.t.length - 1] : -Infinity;
    history.t.push(Math.max(t, last + 0.001));  // uPlot needs x in order
    history.speed.push(speed);
    history.model.push(model);
    history.rng.push(rng);
    history.hasher.push(hasher);
    redraw();
  }

  // --- numbers -------------------------------------------------------------------------
  function formatSpeed(v) {
    if (v < 10) return v.toFixed(2);
    if (v < 100) return v.toFixed(1);
    return v.toFixed(0);
  }

  const formatCount = (n) => n.toLocaleString("en-US");
  const formatSeconds = (s) => (s == null ? "–" : s.toFixed(2));

  function setLatency(stage, seconds, scaleTop) {
    $(stage).textContent = formatSeconds(seconds);
    const fill = document.querySelector(`#latency-${stage} .fill`);
    fill.style.width = seconds == null ? "0" : Math.min(100, (100 * seconds) / scaleTop) + "%";
  }

  // Which stage the workers wait on: the workshop's "find the bottleneck" moment.
  function verdict(data) {
    const rng = data.rng_seconds, hasher = data.hasher_seconds;
    if (!data.workers && data.speed > 0) {
      return ["", "Hashing goes on, but no worker reports in: a miner that writes only the seed's keys " +
        "(such as the seed's own worker). Its speed is the slope of the hashes counter."];
    }
    if (!data.workers) return ["", "No active worker: nothing is mining. Start or scale the worker deployment."];
    if (rng == null || hasher == null) return ["", "Waiting for the workers' reports."];
    if (rng >= QUEUE_SECONDS && rng >= 2 * hasher) {
      return ["rng", `<strong>rng is the bottleneck.</strong> Each call waits ${rng.toFixed(2)} s for a 0.1 s job: ` +
        "the workers queue for random bytes. More workers won't go faster: scale rng."];
    }
    if (hasher >= QUEUE_SECONDS && hasher >= 2 * rng) {
      return ["hasher", `<strong>hasher is the bottleneck.</strong> Each call takes ${hasher.toFixed(2)} s for a 0.1 s job: scale hasher.`];
    }
    return ["none", "No queue: rng and hasher answer in about 0.1 s. More workers mine faster."];
  }

  // --- the cluster view --------------------------------------------------------------------
  // min(3.33 x ready workers, 10 x ready rng); null (no point) without both counts.
  function model(workloads) {
    const worker = workloads.worker, rng = workloads.rng;
    if (!worker || !rng) return null;
    return Math.min(PER_WORKER * worker.ready, PER_RNG * rng.ready);
  }

  // "worker 10/10 · rng 1/1 · hasher 1/1" (ready/desired, as kubectl's READY column), or the
  // one-line reason it is hidden. Returns the model's speed for the graph.
  function showCluster(cluster) {
    const element = $("cluster");
    const workloads = cluster && cluster.workloads;
    $("model-key").hidden = !workloads;
    element.hidden = false;
    element.replaceChildren();
    if (!workloads) {
      element.dataset.source = "hidden";
      element.classList.add("cluster-hidden");
      element.title = "";
      element.textContent = "Replica counts hidden: " + ((cluster && cluster.hidden) || "webui sent none");
      return null;
    }
    element.dataset.source = cluster.source;
    element.classList.remove("cluster-hidden");
    element.title = cluster.source === "kubernetes"
      ? "ready/desired replicas of this release, watched through the Kubernetes API"
      : "workers sending heartbeats; rng and hasher as ci/up.sh started them";
    // In the workshop's order (JSON objects carry none: Flask sorts their keys).
    ["worker", "rng", "hasher"].filter((name) => workloads[name]).forEach((name, i) => {
      const counts = workloads[name];
      if (i) element.append(" · ");
      const item = document.createElement("span");
      item.dataset.component = name;
      item.textContent = `${name} ${counts.ready}/${counts.desired}`;
      if (counts.ready < counts.desired) item.className = "not-ready";
      element.append(item);
    });
    return model(workloads);
  }

  // The names of the rng and hasher Services with no ready endpoint, from webui's watch of the
  // EndpointSlices: mining stops, and the banner names them.
  function servicesWithoutEndpoints(cluster) {
    const services = (cluster && cluster.services) || {};
    return ["rng", "hasher"].filter((c) => services[c] && services[c].ready === 0)
      .map((c) => services[c].name);
  }

  function setState(state, message) {
    page.state = state;
    document.body.dataset.state = state;
    $("status").textContent = message;
  }

  function showLive(data) {
    const now = Date.now() / 1000;
    page.clockOffset = data.now - now;
    page.downSince = null;
    if (data.settling) {
      setState("settling", data.warming
        ? "Hashing goes on: measuring the speed of a miner that does not report…"
        : "Redis is back: waiting for every worker's next report…");
      return;  // some heartbeats may be missing for a second: no point rather than a false dip
    }
    page.lastGood = data.now;
    $("speed").textContent = formatSpeed(data.speed);
    $("workers").textContent = formatCount(data.workers);
    $("coins").textContent = formatCount(data.coins);
    $("hashes").textContent = formatCount(data.hashes);
    $("freshness").textContent = data.unreported_speed > 0
      ? "the workers' own rates, plus the hashes counter's slope for miners that do not report"
      : "sum of the workers' own rates over the last 6 s";
    const top = Math.max(0.5, data.rng_seconds || 0, data.hasher_seconds || 0);
    setLatency("rng", data.rng_seconds, top);
    setLatency("hasher", data.hasher_seconds, top);
    const [culprit, text] = verdict(data);
    document.querySelector(".culprit").dataset.culprit = culprit;
    $("verdict").innerHTML = text;
    const unreachable = servicesWithoutEndpoints(data.cluster);
    if (unreachable.length) {
      setState("degraded", unreachable.map((name) => `Service ${name} has no ready endpoint: ` +
        "the workers cannot reach it (kubectl get endpointslices -l " +
        `kubernetes.io/service-name=${name}; was its selector edited?)`).join(" · "));
    } else if (data.errors && data.errors.length) {
      setState("degraded", `Workers report failed calls to ${data.errors.join(", ")} (last 10 s)`);
    } else {
      setState("live", "Live · updated every second");
    }
    addPoint(data.now, data.speed, data.rng_seconds, data.hasher_seconds, showCluster(data.cluster));
  }

  function showDown(state, problem, serverNow) {
    const now = serverNow || Date.now() / 1000 + page.clockOffset;
    if (page.downSince == null) page.downSince = now;
    const since = clockTime(page.downSince);
    // webui's own words after its "redis unreachable: " or "redis is full: ".
    const detail = (problem || "").replace(/^redis (unreachable|is full): /, "");
    if (state === "redis-down") {
      setState(state, `Redis unreachable since ${since} (${detail}) · the workers keep mining and keep their counts`);
    } else if (state === "redis-full") {
      setState(state, `Redis is full since ${since}: ${detail}`);
    } else {
      setState(state, `Dashboard server unreachable since ${since} (${problem})`);
    }
    $("freshness").textContent = page.lastGood == null ? "no numbers yet"
      : `last known, ${Math.round(now - page.lastGood)} s ago`;
    addPoint(now, null, null, null);  // a gap in the graph, not a drop to 0
  }

  // --- polling -------------------------------------------------------------------------
  async function poll() {
    const started = performance.now();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      const response = await fetch("json", {cache: "no-store", signal: abort.signal});
      const body = await response.json().catch(() => null);
      if (response.ok && body && typeof body.speed === "number") {
        showLive(body);
      } else if (response.status === 503 && body && body.error) {
        showDown(body.redis === "full" ? "redis-full" : "redis-down", body.error, body.now);
      } else {
        showDown("webui-down", `HTTP ${response.status}`);
      }
    } catch (error) {
      showDown("webui-down", error.name === "AbortError" ? `no answer in ${TIMEOUT_MS / 1000} s` : "no connection");
    } finally {
      clearTimeout(timer);
      setTimeout(poll, Math.max(0, POLL_MS - (performance.now() - started)));
    }
  }

  poll();
})();

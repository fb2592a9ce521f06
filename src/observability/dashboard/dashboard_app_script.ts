// The dashboard's browser script: polls /dashboard/data and redraws tiles and charts. Served inline in the page;
// plain ES2017, no backquote and no dollar-brace (it sits in a template literal). `?every=MS` sets the poll interval.
export const APP_SCRIPT = String.raw`
var state = { minutes: 0, breakdown: "route", metric: "requests", data: null, failures: 0, timer: 0 };
var params = new URLSearchParams(location.search);
var EVERY = Math.max(250, Number(params.get("every")) || 2000);
// Relative, so the page also works behind a proxy that mounts the admin port under a prefix.
var DATA = /\/dashboard\/$/.test(location.pathname) ? "data" : "dashboard/data";

function $(id) { return document.getElementById(id); }

function setKpi(id, value, text, sub, label) {
  var k = $(id);
  k.setAttribute("data-value", String(value));
  k.querySelector(".kpi-value").textContent = text;
  k.querySelector(".kpi-sub").textContent = sub;
  k.querySelector(".kpi-sub").title = sub;
  if (label) k.querySelector(".kpi-label").textContent = label;
}

function rangeLabel() { return "last " + state.minutes + " min"; }

function perMinute(values, bucketMs) {
  var n = Math.max(1, Math.round(60000 / bucketMs)), s = 0;
  for (var i = Math.max(0, values.length - n); i < values.length; i++) s += values[i];
  return s;
}

function markers(d) {
  return d.config.changes.slice(1).map(function (c) { return { at: c.at, label: "rev " + c.revision }; });
}

function renderHeader(d) {
  $("role").textContent = d.role === "run" ? "gateway · tollgate run" : "rate limit service · tollgate aggregator";
  var chips = $("chips");
  chips.textContent = "";
  var facts = {};
  for (var k in d.info) facts[k] = d.info[k];
  for (var key in facts) {
    var v = facts[key];
    if (v === null || v === undefined || v === "") continue;
    var c = document.createElement("span");
    c.className = "chip";
    c.innerHTML = "<span class=chip-key></span><span class=chip-value></span>";
    c.querySelector(".chip-key").textContent = key;
    c.querySelector(".chip-value").textContent = String(v);
    chips.appendChild(c);
  }
}

function renderKpis(d) {
  var t = d.traffic;
  setKpi("kpi-requests", t.totals.requests, fmt(t.range.requests),
    fmt(perMinute(t.requests, t.bucketMs)) + "/min now · " + fmt(t.totals.requests) + " since start", "Requests · " + rangeLabel());
  setKpi("kpi-tokens", t.totals.tokens, fmt(t.range.tokens),
    fmt(sum(t.inputTokens)) + " in · " + fmt(sum(t.outputTokens)) + " out · " + fmt(t.totals.tokens) + " total", "Tokens · " + rangeLabel());
  var answered = t.statusSource === "edge" ? sumClasses(t.statusClasses) : t.range.requests;
  var rate = answered > 0 ? (100 * t.range.errors) / answered : 0;
  setKpi("kpi-errors", t.range.errors, answered > 0 ? rate.toFixed(rate < 10 && rate > 0 ? 1 : 0) + "%" : "–",
    fmt(t.range.errors) + " of " + fmt(answered) + (t.statusSource === "edge" ? " responses" : " requests"), "Error rate · " + rangeLabel());
  $("kpi-errors").className = "kpi" + (rate >= 5 ? " bad" : rate > 0 ? " warn" : "");
  setKpi("kpi-latency", t.range.latencyP95 === null ? 0 : t.range.latencyP95, fmtMs(t.range.latencyP95),
    "p95 · p50 " + fmtMs(t.range.latencyP50), "Latency · " + rangeLabel());
  var h = d.headroom;
  if (!h) setKpi("kpi-headroom", -1, "–", "no rate-limit rules here");
  else if (h.top.length === 0) setKpi("kpi-headroom", 100, "100%", h.limitedRules + " limited rule(s) · no active counter");
  else {
    var worst = h.top[0];
    var left = Math.max(0, 100 - 100 * worst.utilisation);
    setKpi("kpi-headroom", left, left.toFixed(0) + "%", "on the busiest of " + h.activeCounters + " counter(s)");
  }
  $("kpi-headroom").className = "kpi" + (h && h.top.length && h.top[0].utilisation >= 1 ? " bad" : h && h.top.length && h.top[0].utilisation >= 0.8 ? " warn" : "");
  if (d.config.revision !== null) {
    var since = d.config.changes.length ? d.config.changes[d.config.changes.length - 1].at : d.startedAt;
    var changes = d.config.changes.length - 1;
    setKpi("kpi-config", d.config.revision, "rev " + d.config.revision, "since " + clock(since, true) +
      (changes > 0 ? " · " + changes + " change(s)" : ""));
  } else if (h) {
    setKpi("kpi-config", d.config.ruleChanges, h.limitedRules + " rules", h.domains.length + " domain(s) · " +
      d.config.ruleChanges + " reload(s)");
  } else setKpi("kpi-config", 0, "–", "no configuration");
}

function sum(xs) { var s = 0; for (var i = 0; i < xs.length; i++) s += xs[i] || 0; return s; }
function sumClasses(c) { var s = 0; for (var k in c) s += sum(c[k]); return s; }

function renderTraffic(d) {
  var t = d.traffic;
  var list = t.series[state.breakdown];
  var key = state.metric === "tokens" ? "tokensSeries" : "requestsSeries";
  var series = list.map(function (s, i) {
    return { label: s.label, color: colorFor(s.label, i), values: s[key], total: state.metric === "tokens" ? s.tokens : s.requests };
  });
  if (series.length === 0) series = [{ label: "no traffic yet", color: OTHER_COLOR, values: t.times.map(function () { return 0; }), total: 0 }];
  var svg = timeChart($("chart-traffic"), { name: "traffic", times: t.times, bucketMs: t.bucketMs, series: series, mode: "area", markers: markers(d) });
  legend($("legend-traffic"), series);
  $("traffic-title").textContent = (state.metric === "tokens" ? "Tokens" : "Requests") + " by " + state.breakdown;
  // The canonical request chart, whatever the breakdown: one series, what tests and operators read first.
  svg.setAttribute("data-requests", String(sum(t.requests)));
}

function renderTokens(d) {
  var t = d.traffic;
  var other = t.tokens.map(function (v, i) { return Math.max(0, v - t.inputTokens[i] - t.outputTokens[i]); });
  var series = [
    { label: "input", color: "#60a5fa", values: t.inputTokens, total: sum(t.inputTokens) },
    { label: "output", color: "#34d399", values: t.outputTokens, total: sum(t.outputTokens) },
  ];
  if (sum(other) > 0) series.push({ label: "other (total only)", color: OTHER_COLOR, values: other, total: sum(other) });
  timeChart($("chart-tokens"), { name: "tokens", times: t.times, bucketMs: t.bucketMs, series: series, mode: "area", markers: markers(d) });
  legend($("legend-tokens"), series);
}

function renderLatency(d) {
  var t = d.traffic;
  var series = [
    { label: "p95", color: "#fbbf24", values: t.latencyP95 },
    { label: "p50", color: "#60a5fa", values: t.latencyP50, dash: "4 3" },
  ];
  timeChart($("chart-latency"), { name: "latency", times: t.times, bucketMs: t.bucketMs, series: series, mode: "line", format: fmtMs, markers: markers(d) });
  legend($("legend-latency"), series.map(function (s) { return { label: s.label, color: s.color }; }));
}

function renderErrors(d) {
  var t = d.traffic;
  var series = [
    { label: "4xx", color: "#fbbf24", values: t.statusClasses["4xx"], total: sum(t.statusClasses["4xx"]) },
    { label: "5xx", color: "#f87171", values: t.statusClasses["5xx"], total: sum(t.statusClasses["5xx"]) },
  ];
  timeChart($("chart-errors"), { name: "errors", times: t.times, bucketMs: t.bucketMs, series: series, mode: "columns", markers: markers(d) });
  legend($("legend-errors"), series);
  $("errors-source").textContent = t.statusSource === "edge" ? "every response the edge sent" : "routed requests (usage events)";
  var max = t.errorTypes.length ? t.errorTypes[0].count : 1;
  hbars($("bars-error-types"), t.errorTypes.map(function (e) {
    var status = Number(e.label.slice(0, 3)) || Number(e.label.slice(5, 8));
    return { label: e.label, value: e.count, max: max, text: fmt(e.count), color: status >= 500 ? "#f87171" : "#fbbf24" };
  }), "error-types", "No errors in the " + rangeLabel() + ".");
}

function renderHeadroom(d) {
  var h = d.headroom;
  var host = $("bars-headroom");
  if (!h) {
    hbars(host, [], "headroom", "No rate-limit rules in this process.");
    return;
  }
  var now = d.now;
  $("headroom-note").textContent = h.top.length < h.activeCounters
    ? "the busiest " + h.top.length + " of " + h.activeCounters + " counters in their current window"
    : "every counter in its current window, busiest first";
  hbars(host, h.top.map(function (c) {
    var u = c.utilisation;
    var color = u >= 1 ? "#f87171" : u >= 0.8 ? "#fb923c" : u >= 0.5 ? "#fbbf24" : "#34d399";
    var resets = Math.max(0, Math.round((c.windowEnd - now) / 1000));
    var sub = [c.name, c.scope, h.domains.length > 1 ? c.domain : "", "resets in " + duration(resets)].filter(Boolean).join(" · ") + (c.shadowMode ? " · shadow mode" : "");
    return { label: c.descriptor, value: Math.min(c.used, c.limit || c.used), max: c.limit || 1, color: color,
      text: fmt(c.used) + " / " + fmt(c.limit) + " per " + c.unit + " · " +
        (c.used > c.limit ? "over by " + fmt(c.used - c.limit) : fmt(c.remaining) + " left"), sub: sub };
  }), "headroom", h.limitedRules + " limited rule(s); no counter in a current window yet.");
}

function duration(s) {
  if (s >= 86400) return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  if (s >= 3600) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  if (s >= 60) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return s + "s";
}

function renderTenants(d) {
  var list = d.traffic.series.tenant;
  var max = list.reduce(function (m, s) { return Math.max(m, s.tokens); }, 0) || 1;
  $("tenants-source").textContent = d.tenantSource ? "by " + d.tenantSource + ", ranked by tokens" : "ranked by tokens";
  hbars($("bars-tenants"), list.map(function (s, i) {
    return { label: s.label, value: s.tokens, max: max, color: colorFor(s.label, i), text: fmt(s.tokens) + " tokens",
      sub: fmt(s.requests) + " request(s)" };
  }), "tenants", "No tenant known yet: tenants come from the usage event's tenant or a per-client rate-limit descriptor (e.g. x-user-id).");
}

function render() {
  var d = state.data;
  if (!d) return;
  renderHeader(d);
  renderKpis(d);
  renderTraffic(d);
  renderTokens(d);
  renderLatency(d);
  renderErrors(d);
  renderHeadroom(d);
  renderTenants(d);
  document.body.setAttribute("data-updated", String(d.now));
}

function setLive(ok, text) {
  var live = $("live");
  live.className = "live " + (ok ? "ok" : "down");
  live.querySelector(".live-text").textContent = text;
}

function poll() {
  clearTimeout(state.timer);
  fetch(DATA + (state.minutes ? "?minutes=" + state.minutes : ""), { cache: "no-store" })
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(function (d) {
      if (!state.minutes) return chooseRange(d);
      state.data = d;
      state.failures = 0;
      render();
      setLive(true, "live · " + clock(d.now, true));
    })
    .catch(function (e) {
      state.failures++;
      setLive(false, "disconnected (" + e.message + "), retrying");
    })
    .then(function () { state.timer = setTimeout(poll, state.failures ? Math.min(10000, EVERY * 2) : EVERY); });
}

// Until the operator picks one, the range is the shortest that covers the process's life and its traffic (an
// aggregator folds events older than itself): a gateway started a minute ago shows its minute, not a spike at the
// edge of half an hour.
function chooseRange(d) {
  var t = d.traffic, first = t.requests.findIndex(function (n, i) { return n > 0 || t.errors[i] > 0; });
  var up = Math.max(d.now - d.startedAt, first < 0 ? 0 : d.now - t.times[first]) / 60000;
  state.minutes = up <= 5 ? 5 : up <= 15 ? 15 : 30;
  $("range").querySelectorAll("button").forEach(function (b) {
    b.classList.toggle("on", Number(b.getAttribute("data-value")) === state.minutes);
  });
  state.timer = setTimeout(poll, 0);
}

function segmented(id, key, after) {
  var host = $(id);
  host.addEventListener("click", function (ev) {
    var b = ev.target.closest("button");
    if (!b) return;
    state[key] = key === "minutes" ? Number(b.getAttribute("data-value")) : b.getAttribute("data-value");
    host.querySelectorAll("button").forEach(function (x) { x.classList.toggle("on", x === b); });
    if (after) after(); else render();
  });
}

segmented("range", "minutes", poll);
segmented("breakdown", "breakdown");
segmented("metric", "metric");
window.addEventListener("resize", render);
poll();
`;

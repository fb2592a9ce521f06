// The dashboard's charts, drawn as SVG by a few dozen lines of browser script (no library, nothing fetched): a time
// chart (stacked areas, lines or stacked columns, with a hover read-out and config-change markers) and horizontal
// bars. Served inline in the page; plain ES2017 so any browser runs it as is. It must contain no backquote and no
// dollar-brace, because it sits in a template literal.
export const CHARTS_SCRIPT = String.raw`
var SVG_NS = "http://www.w3.org/2000/svg";
var PALETTE = ["#60a5fa", "#34d399", "#fbbf24", "#f472b6", "#a78bfa", "#22d3ee", "#fb923c", "#e879f9", "#a3e635"];
var OTHER_COLOR = "#64748b";
var TICKS = [10000, 30000, 60000, 120000, 300000, 600000, 900000, 1800000, 3600000];

function el(tag, attrs, parent) {
  var e = document.createElementNS(SVG_NS, tag);
  for (var k in attrs) e.setAttribute(k, String(attrs[k]));
  if (parent) parent.appendChild(e);
  return e;
}

function fmt(n) {
  if (n === null || n === undefined || isNaN(n)) return "–";
  var a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
  if (a >= 100 || n === Math.round(n)) return String(Math.round(n));
  return n.toFixed(a >= 10 ? 1 : 2);
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10000 ? 0 : 1) + " s";
  return Math.round(ms) + " ms";
}

function clock(t, seconds) {
  var d = new Date(t);
  var p = function (x) { return (x < 10 ? "0" : "") + x; };
  return p(d.getHours()) + ":" + p(d.getMinutes()) + (seconds ? ":" + p(d.getSeconds()) : "");
}

// The top of the y axis: four grid steps of a round size (whole ones for counts, so no "1.25 requests").
function niceMax(v, whole) {
  var step = Math.max(v, whole ? 4 : 1) / 4;
  var p = Math.pow(10, Math.floor(Math.log10(step)));
  var steps = whole && p < 10 ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
  for (var i = 0; i < steps.length; i++) if (steps[i] * p >= step) return 4 * steps[i] * p;
  return 40 * p;
}

function colorFor(label, i) {
  return label === "other" ? OTHER_COLOR : PALETTE[i % PALETTE.length];
}

// opts: { times, bucketMs, series: [{ label, color, values, dash }], mode: "area" | "line" | "columns",
//         format, markers: [{ at, label }], name }
function timeChart(host, opts) {
  var W = host.clientWidth || 600, H = host.clientHeight || 220;
  var pad = { l: 44, r: 12, t: 10, b: 22 };
  host.textContent = "";
  var svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, "data-chart": opts.name, role: "img" }, host);
  var n = opts.times.length;
  var stacked = opts.mode !== "line";
  var tops = new Array(n).fill(0);
  var max = 0, total = 0;
  opts.series.forEach(function (s) {
    s.values.forEach(function (v, i) {
      var x = v === null ? 0 : v;
      total += x;
      if (stacked) { tops[i] += x; max = Math.max(max, tops[i]); } else max = Math.max(max, x);
    });
  });
  svg.setAttribute("data-total", String(total));
  var yMax = niceMax(max, !opts.format);
  var iw = W - pad.l - pad.r, ih = H - pad.t - pad.b;
  var step = n > 1 ? iw / (n - 1) : iw;
  var colW = Math.max(1, iw / n - 1);
  var X = function (i) { return opts.mode === "columns" ? pad.l + (i * iw) / n : pad.l + i * step; };
  var Y = function (v) { return pad.t + ih - (v / yMax) * ih; };
  for (var g = 0; g <= 4; g++) {
    var gv = (yMax * g) / 4, gy = Y(gv);
    el("line", { x1: pad.l, x2: W - pad.r, y1: gy, y2: gy, class: "grid" }, svg);
    var yl = el("text", { x: pad.l - 6, y: gy + 4, class: "axis", "text-anchor": "end" }, svg);
    yl.textContent = (opts.format || fmt)(gv);
  }
  // Time at x: buckets are drawn at their start (columns span their bucket).
  var t0 = opts.times[0], span = opts.bucketMs * Math.max(1, opts.mode === "columns" ? n : n - 1);
  var TX = function (t) { return pad.l + ((t - t0) / span) * iw; };
  var tickMs = TICKS.find(function (s) { return span / s <= Math.max(2, Math.floor(iw / 80)); }) || TICKS[TICKS.length - 1];
  for (var t = Math.ceil(t0 / tickMs) * tickMs; t <= t0 + span; t += tickMs) {
    var tx = TX(t);
    if (tx > W - pad.r - 16) continue;
    el("line", { x1: tx, x2: tx, y1: pad.t + ih, y2: pad.t + ih + 4, class: "grid" }, svg);
    var xl = el("text", { x: tx, y: H - 5, class: "axis", "text-anchor": "middle" }, svg);
    xl.textContent = clock(t, tickMs < 60000);
  }
  (opts.markers || []).forEach(function (m) {
    if (m.at < t0 || m.at > t0 + span) return;
    var mx = TX(m.at);
    el("line", { x1: mx, x2: mx, y1: pad.t, y2: pad.t + ih, class: "marker" }, svg);
    var ml = el("text", { x: mx + 3, y: pad.t + 10, class: "marker-label" }, svg);
    ml.textContent = m.label;
  });
  var base = new Array(n).fill(0);
  opts.series.forEach(function (s) {
    var color = s.color;
    if (opts.mode === "columns") {
      s.values.forEach(function (v, i) {
        if (!v) return;
        el("rect", { x: X(i) + 0.5, y: Y(base[i] + v), width: colW, height: Math.max(0.5, Y(base[i]) - Y(base[i] + v)), fill: color, rx: 1 }, svg);
        base[i] += v;
      });
      return;
    }
    if (!stacked) {
      // Lines break where a bucket has no value; a lone point gets a dot so it shows at all.
      var run = [];
      var flush = function () {
        if (run.length === 1) el("circle", { cx: run[0][0], cy: run[0][1], r: 2.5, fill: color }, svg);
        else if (run.length > 1) el("polyline", { points: run.map(function (p) { return p.join(","); }).join(" "), fill: "none", stroke: color, "stroke-width": 1.8, "stroke-dasharray": s.dash || "none", "stroke-linejoin": "round" }, svg);
        run = [];
      };
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined) flush(); else run.push([X(i).toFixed(1), Y(v).toFixed(1)]);
      });
      flush();
      return;
    }
    var pts = [], lower = [];
    s.values.forEach(function (v, i) {
      var y0 = base[i], y1 = y0 + (v || 0);
      pts.push(X(i).toFixed(1) + "," + Y(y1).toFixed(1));
      lower.push(X(i).toFixed(1) + "," + Y(y0).toFixed(1));
      base[i] = y1;
    });
    el("polygon", { points: pts.concat(lower.reverse()).join(" "), fill: color, "fill-opacity": 0.28 }, svg);
    el("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 1.6, "stroke-linejoin": "round" }, svg);
  });
  hover(host, svg, opts, X, pad, ih, colW);
  return svg;
}

function hover(host, svg, opts, X, pad, ih, colW) {
  var tip = document.createElement("div");
  tip.className = "tip";
  host.appendChild(tip);
  var cross = el("line", { y1: pad.t, y2: pad.t + ih, class: "cross", visibility: "hidden" }, svg);
  var n = opts.times.length;
  // The read-out survives the redraw of every poll: the host remembers where the pointer is.
  var show = function (x) {
    var r = svg.getBoundingClientRect();
    var best = 0, dist = Infinity;
    for (var i = 0; i < n; i++) {
      var d = Math.abs(X(i) + (opts.mode === "columns" ? colW / 2 : 0) - x);
      if (d < dist) { dist = d; best = i; }
    }
    var cx = X(best) + (opts.mode === "columns" ? colW / 2 : 0);
    cross.setAttribute("x1", cx); cross.setAttribute("x2", cx); cross.setAttribute("visibility", "visible");
    var rows = ["<b>" + clock(opts.times[best], true) + "</b>"];
    opts.series.slice().reverse().forEach(function (s) {
      var v = s.values[best];
      rows.push("<span class=sw style=background:" + s.color + "></span>" + esc(s.label) + " <b>" + (opts.format || fmt)(v) + "</b>");
    });
    tip.innerHTML = rows.join("<br>");
    tip.style.display = "block";
    var left = cx + 14;
    if (left + tip.offsetWidth > r.width) left = cx - tip.offsetWidth - 14;
    tip.style.left = left + "px";
    tip.style.top = "8px";
  };
  svg.addEventListener("mousemove", function (ev) {
    host.hoverX = ev.clientX - svg.getBoundingClientRect().left;
    show(host.hoverX);
  });
  svg.addEventListener("mouseleave", function () {
    host.hoverX = null;
    tip.style.display = "none";
    cross.setAttribute("visibility", "hidden");
  });
  if (host.hoverX !== null && host.hoverX !== undefined) show(host.hoverX);
}

// rows: [{ label, sub, value, max, text, color }]
function hbars(host, rows, name, empty) {
  host.textContent = "";
  var wrap = document.createElement("div");
  wrap.className = "bars";
  wrap.setAttribute("data-chart", name);
  wrap.setAttribute("data-rows", String(rows.length));
  host.appendChild(wrap);
  if (rows.length === 0) {
    var e = document.createElement("div");
    e.className = "empty";
    e.textContent = empty;
    wrap.appendChild(e);
    return wrap;
  }
  rows.forEach(function (r) {
    var row = document.createElement("div");
    row.className = "bar-row";
    row.innerHTML = "<div class=bar-head><span class=bar-label></span><span class=bar-text></span></div>" +
      "<svg class=bar-svg preserveAspectRatio=none viewBox='0 0 100 8'><rect class=bar-bg x=0 y=0 width=100 height=8 rx=2></rect>" +
      "<rect class=bar-fg x=0 y=0 height=8 rx=2></rect></svg><div class=bar-sub></div>";
    row.querySelector(".bar-label").textContent = r.label;
    row.querySelector(".bar-label").title = r.label;
    row.querySelector(".bar-text").textContent = r.text;
    row.querySelector(".bar-sub").textContent = r.sub || "";
    var fg = row.querySelector(".bar-fg");
    fg.setAttribute("width", String(Math.max(0.6, Math.min(100, (100 * r.value) / (r.max || 1)))));
    fg.setAttribute("fill", r.color);
    wrap.appendChild(row);
  });
  return wrap;
}

function legend(host, series, format) {
  host.textContent = "";
  series.forEach(function (s) {
    var item = document.createElement("span");
    item.className = "legend-item";
    item.innerHTML = "<span class=sw></span><span class=legend-label></span><span class=legend-value></span>";
    item.querySelector(".sw").style.background = s.color;
    item.querySelector(".legend-label").textContent = s.label;
    item.querySelector(".legend-value").textContent = s.total === undefined ? "" : (format || fmt)(s.total);
    host.appendChild(item);
  });
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, function (c) {
    return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
  });
}
`;

// The dashboard page: one HTML document with its style and scripts inline, so it needs nothing but the admin port
// (no CDN, no build step; it works offline). The charts are SVG drawn by dashboard_charts_script.ts.
import { CHARTS_SCRIPT } from "./dashboard_charts_script.ts";
import { APP_SCRIPT } from "./dashboard_app_script.ts";

const STYLE = String.raw`
:root {
  --bg: #0b1120; --panel: #111a2e; --panel-2: #16213a; --line: #23304d; --text: #e2e8f0; --muted: #8b9ab5;
  --accent: #60a5fa; --ok: #34d399; --warn: #fbbf24; --bad: #f87171;
  font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
header { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; padding: 12px 20px;
  border-bottom: 1px solid var(--line); background: #0d1527; position: sticky; top: 0; z-index: 2; }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 650; font-size: 16px; letter-spacing: .2px; }
.brand svg { width: 22px; height: 22px; }
#role { color: var(--muted); font-size: 12px; }
#chips { display: flex; gap: 6px; flex-wrap: wrap; }
.chip { display: inline-flex; border: 1px solid var(--line); border-radius: 999px; overflow: hidden; font-size: 11.5px; }
.chip-key { padding: 2px 8px; color: var(--muted); background: var(--panel); }
.chip-value { padding: 2px 8px; background: var(--panel-2); font-variant-numeric: tabular-nums; }
.spacer { flex: 1; }
.seg { display: inline-flex; border: 1px solid var(--line); border-radius: 7px; overflow: hidden; }
.seg button { background: transparent; color: var(--muted); border: 0; padding: 4px 10px; font: inherit; cursor: pointer; }
.seg button + button { border-left: 1px solid var(--line); }
.seg button.on { background: var(--panel-2); color: var(--text); }
.live { display: inline-flex; align-items: center; gap: 6px; color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.live::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: var(--muted); }
.live.ok::before { background: var(--ok); box-shadow: 0 0 0 3px rgba(52, 211, 153, .18); }
.live.down::before { background: var(--bad); }
main { padding: 16px 20px 28px; display: grid; gap: 14px; grid-template-columns: repeat(12, 1fr); }
.kpis { grid-column: 1 / -1; display: grid; gap: 14px; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); }
.kpi { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; border-top: 3px solid var(--accent); }
.kpi.warn { border-top-color: var(--warn); }
.kpi.bad { border-top-color: var(--bad); }
.kpi-label { color: var(--muted); font-size: 11.5px; text-transform: uppercase; letter-spacing: .6px; }
.kpi-value { font-size: 26px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.kpi-sub { color: var(--muted); font-size: 12px; margin-top: 2px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; min-width: 0; }
.panel h2 { margin: 0; font-size: 13.5px; font-weight: 600; }
.panel-head { display: flex; align-items: center; gap: 10px; margin-bottom: 8px; flex-wrap: wrap; }
.panel-note { color: var(--muted); font-size: 12px; }
.w12 { grid-column: span 12; } .w7 { grid-column: span 7; } .w5 { grid-column: span 5; } .w6 { grid-column: span 6; }
@media (max-width: 1100px) { .w7, .w5, .w6 { grid-column: span 12; } }
.chart { position: relative; height: 220px; }
.chart.tall { height: 260px; }
.chart svg { display: block; }
.grid { stroke: var(--line); stroke-width: 1; }
.axis { fill: var(--muted); font-size: 10.5px; font-variant-numeric: tabular-nums; }
.marker { stroke: #a78bfa; stroke-dasharray: 3 3; }
.marker-label { fill: #a78bfa; font-size: 10px; }
.cross { stroke: #94a3b8; stroke-width: 1; stroke-dasharray: 2 2; }
.tip { position: absolute; display: none; pointer-events: none; background: #0b1222f0; border: 1px solid var(--line);
  border-radius: 7px; padding: 6px 9px; font-size: 12px; white-space: nowrap; z-index: 3; line-height: 1.55; }
.sw { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 6px; vertical-align: -0.5px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 6px; font-size: 12px; color: var(--muted); }
.legend-item { display: inline-flex; align-items: center; max-width: 100%; }
.legend-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 260px; }
.legend-value { color: var(--text); margin-left: 6px; font-variant-numeric: tabular-nums; }
.bars { display: flex; flex-direction: column; gap: 10px; }
.bar-head { display: flex; justify-content: space-between; gap: 10px; font-size: 12.5px; }
.bar-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-weight: 550; }
.bar-text { color: var(--muted); white-space: nowrap; font-variant-numeric: tabular-nums; }
.bar-svg { display: block; width: 100%; height: 8px; margin-top: 4px; }
.bar-bg { fill: var(--panel-2); }
.bar-sub { color: var(--muted); font-size: 11.5px; margin-top: 2px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#bars-headroom, #bars-tenants { max-height: 430px; overflow-y: auto; padding-right: 4px; }
.empty { color: var(--muted); padding: 18px 4px; text-align: center; }
footer { color: var(--muted); font-size: 11.5px; padding: 0 20px 20px; }
footer a { color: var(--muted); }
`;

const BODY = String.raw`
<header>
  <div class="brand">
    <svg viewBox="0 0 24 24" aria-hidden="true"><rect x="2" y="4" width="20" height="4" rx="1.5" fill="#60a5fa"/>
      <rect x="4" y="10" width="3" height="10" rx="1" fill="#60a5fa"/><rect x="10.5" y="10" width="3" height="10" rx="1" fill="#34d399"/>
      <rect x="17" y="10" width="3" height="10" rx="1" fill="#fbbf24"/></svg>
    Tollgate
  </div>
  <span id="role"></span>
  <div id="chips"></div>
  <div class="spacer"></div>
  <div class="seg" id="range">
    <button data-value="5">5 min</button><button data-value="15">15 min</button><button data-value="30" class="on">30 min</button>
  </div>
  <span class="live" id="live"><span class="live-text">connecting…</span></span>
</header>
<main>
  <section class="kpis">
    <div class="kpi" id="kpi-requests" data-value="0"><div class="kpi-label">Requests</div><div class="kpi-value">–</div><div class="kpi-sub"></div></div>
    <div class="kpi" id="kpi-tokens" data-value="0"><div class="kpi-label">Tokens</div><div class="kpi-value">–</div><div class="kpi-sub"></div></div>
    <div class="kpi" id="kpi-errors" data-value="0"><div class="kpi-label">Error rate</div><div class="kpi-value">–</div><div class="kpi-sub"></div></div>
    <div class="kpi" id="kpi-latency" data-value="0"><div class="kpi-label">Latency</div><div class="kpi-value">–</div><div class="kpi-sub"></div></div>
    <div class="kpi" id="kpi-headroom" data-value="0"><div class="kpi-label">Rate-limit headroom</div><div class="kpi-value">–</div><div class="kpi-sub"></div></div>
    <div class="kpi" id="kpi-config" data-value="0"><div class="kpi-label">Configuration</div><div class="kpi-value">–</div><div class="kpi-sub"></div></div>
  </section>
  <section class="panel w12">
    <div class="panel-head">
      <h2 id="traffic-title">Requests by route</h2><span class="panel-note">per 10 s bucket</span>
      <div class="spacer"></div>
      <div class="seg" id="breakdown"><button data-value="route" class="on">route</button><button data-value="model">model</button><button data-value="backend">backend</button><button data-value="tenant">tenant</button></div>
      <div class="seg" id="metric"><button data-value="requests" class="on">requests</button><button data-value="tokens">tokens</button></div>
    </div>
    <div class="chart tall" id="chart-traffic"></div>
    <div class="legend" id="legend-traffic"></div>
  </section>
  <section class="panel w7">
    <div class="panel-head"><h2>Tokens</h2><span class="panel-note">input and output, as providers reported them</span></div>
    <div class="chart" id="chart-tokens"></div>
    <div class="legend" id="legend-tokens"></div>
  </section>
  <section class="panel w5">
    <div class="panel-head"><h2>Latency</h2><span class="panel-note">request start to end of response</span></div>
    <div class="chart" id="chart-latency"></div>
    <div class="legend" id="legend-latency"></div>
  </section>
  <section class="panel w7">
    <div class="panel-head"><h2>Rate-limit headroom</h2><span class="panel-note" id="headroom-note">busiest counters of the current windows</span></div>
    <div id="bars-headroom"></div>
  </section>
  <section class="panel w5">
    <div class="panel-head"><h2>Top tenants</h2><span class="panel-note" id="tenants-source"></span></div>
    <div id="bars-tenants"></div>
  </section>
  <section class="panel w7">
    <div class="panel-head"><h2>Errors</h2><span class="panel-note" id="errors-source"></span></div>
    <div class="chart" id="chart-errors"></div>
    <div class="legend" id="legend-errors"></div>
  </section>
  <section class="panel w5">
    <div class="panel-head"><h2>Error types</h2><span class="panel-note">status and response code details</span></div>
    <div id="bars-error-types"></div>
  </section>
</main>
<footer>Data: <a href="/dashboard/data">/dashboard/data</a> (JSON) · metrics: <a href="/metrics">/metrics</a> ·
  10-second buckets, kept for 30 minutes in this process's memory.</footer>
`;

export function dashboardPage(role: "run" | "aggregator"): string {
  const title = role === "run" ? "Tollgate · gateway" : "Tollgate · aggregator";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body>${BODY}<script>${CHARTS_SCRIPT}${APP_SCRIPT}</script></body></html>
`;
}

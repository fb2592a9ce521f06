// The live dashboard on the admin port: `/` and `/dashboard` serve the page (no framework, nothing fetched from
// elsewhere: it works offline), `/dashboard/data` the JSON it polls — traffic from the recorder, rate-limit headroom
// from the aggregator core, the config revision in force.
import type { UsageEvent } from "../../usage/usage_event.ts";
import type { AccessLogSink } from "../../edge/access_log.ts";
import type { RateLimitRules } from "../../usage/rate_limit_rules.ts";
import { DashboardRecorder, type DashboardRecorderOptions, type RecorderView } from "./dashboard_recorder.ts";
import {
  type DescriptorKeyName,
  type HeadroomReport,
  headroomReport,
  type HeadroomSource,
  tenantKeysOf,
} from "./dashboard_headroom.ts";
import { dashboardPage } from "./dashboard_page.ts";

export const DASHBOARD_PAGE_PATHS: readonly string[] = ["/", "/dashboard", "/dashboard/"];
export const DASHBOARD_DATA_PATH = "/dashboard/data";

export type DashboardRole = "run" | "aggregator";
export type InfoValue = string | number | boolean | null;

export interface DashboardOptions {
  readonly role: DashboardRole;
  /** Wall clock, epoch ms; default Date.now. */
  readonly now?: () => number;
  readonly recorder?: Omit<DashboardRecorderOptions, "now" | "tenantOf">;
  /** Facts for the page's header (replica, readiness, upstream…). */
  readonly info?: () => Record<string, InfoValue>;
  /** The config revision in force; its changes are marked on the charts. */
  readonly configRevision?: () => number | undefined;
  /** The rate-limit state: an aggregator core (in `run`, the in-process one). May appear late (the aggregator boots). */
  readonly core?: () => HeadroomSource | undefined;
  /** How descriptor keys read (the request header behind each), when the process knows its routes. */
  readonly names?: () => ReadonlyMap<string, DescriptorKeyName>;
}

export interface ConfigChange {
  readonly revision: number;
  readonly at: number;
}

export interface DashboardData {
  readonly role: DashboardRole;
  readonly now: number;
  readonly startedAt: number;
  readonly info: Record<string, InfoValue>;
  readonly config: {
    /** The revision in force; null where the process has none (an aggregator has rules, not revisions). */
    readonly revision: number | null;
    /** Revisions seen by this page's process, newest last (at most 20). */
    readonly changes: readonly ConfigChange[];
    /** Times the rate-limit rules were swapped since start. */
    readonly ruleChanges: number;
  };
  readonly traffic: RecorderView;
  /** Null without rate-limit rules in this process. */
  readonly headroom: HeadroomReport | null;
  /** What tenants are told apart by: a request header ("x-user-id"), a descriptor key, or the usage events' tenant. */
  readonly tenantSource: string | null;
}

const HEADROOM_CACHE_MS = 1_000;

export class Dashboard {
  readonly recorder: DashboardRecorder;
  readonly #o: DashboardOptions;
  readonly #now: () => number;
  readonly #startedAt: number;
  readonly #changes: ConfigChange[] = [];
  #rules: RateLimitRules | undefined;
  #ruleChanges = 0;
  #tenantKeys: ReadonlySet<string> = new Set();
  #tenantSource: string | null = null;
  #headroom: { at: number; top: number; report: HeadroomReport | null } | undefined;

  constructor(o: DashboardOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#startedAt = this.#now();
    this.recorder = new DashboardRecorder({ ...o.recorder, now: this.#now, tenantOf: (e) => this.#tenantOf(e) });
  }

  /** For ExtProcServer's onUsage, or the aggregator's folded events. */
  readonly recordUsage = (event: UsageEvent): void => this.recorder.recordUsage(event);

  /** The edge's access log sink, also feeding the dashboard every response (run). */
  accessLog(next?: AccessLogSink): AccessLogSink {
    return (entry) => {
      this.recorder.recordResponse({ status: entry.status, details: entry.response_code_details });
      next?.(entry);
    };
  }

  /** The admin server's hook: a response for the dashboard's paths, undefined for any other. */
  readonly handle = (req: Request): Response | undefined => {
    const url = new URL(req.url);
    if (DASHBOARD_PAGE_PATHS.includes(url.pathname)) {
      return new Response(req.method === "HEAD" ? null : dashboardPage(this.#o.role), {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
          // Everything is inline and the data is same-origin: nothing else may load, so the page works offline.
          "content-security-policy":
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        },
      });
    }
    if (url.pathname === DASHBOARD_DATA_PATH) {
      const minutes = Number(url.searchParams.get("minutes") ?? "");
      const top = Number(url.searchParams.get("top") ?? "");
      const counters = Number(url.searchParams.get("counters") ?? "");
      const body = JSON.stringify(this.data({
        ...(minutes > 0 ? { rangeMs: minutes * 60_000 } : {}),
        ...(Number.isInteger(top) && top > 0 ? { top: Math.min(top, 20) } : {}),
        ...(Number.isInteger(counters) && counters > 0 ? { counters: Math.min(counters, 100) } : {}),
      }));
      return new Response(req.method === "HEAD" ? null : body, {
        headers: { "content-type": "application/json", "cache-control": "no-store" },
      });
    }
    return undefined;
  };

  /** `top` labels per dimension (default 6), the `counters` busiest rate-limit counters (default 12). */
  data(o: { readonly rangeMs?: number; readonly top?: number; readonly counters?: number } = {}): DashboardData {
    const now = this.#now();
    this.#observeConfig(now);
    return {
      role: this.#o.role,
      now,
      startedAt: this.#startedAt,
      info: this.#o.info?.() ?? {},
      config: {
        revision: this.#o.configRevision?.() ?? null,
        changes: [...this.#changes],
        ruleChanges: this.#ruleChanges,
      },
      traffic: this.recorder.view(o),
      headroom: this.#headroomAt(now, o.counters ?? 12),
      tenantSource: this.#tenantSource,
    };
  }

  #observeConfig(now: number): void {
    const revision = this.#o.configRevision?.();
    const last = this.#changes.at(-1);
    if (revision !== undefined && revision !== last?.revision) {
      this.#changes.push({ revision, at: now });
      if (this.#changes.length > 20) this.#changes.shift();
    }
    this.#currentRules();
  }

  /** The rules in force; a swap is counted and re-derives the tenant keys. */
  #currentRules(): RateLimitRules | undefined {
    const rules = this.#o.core?.()?.rules;
    if (rules && rules !== this.#rules) {
      if (this.#rules) this.#ruleChanges++;
      this.#rules = rules;
      this.#tenantKeys = tenantKeysOf(rules);
    }
    return rules;
  }

  #headroomAt(now: number, top: number): HeadroomReport | null {
    // Reading every counter is O(counters); several open pages share one read a second.
    const cached = this.#headroom;
    if (cached && cached.top === top && now - cached.at < HEADROOM_CACHE_MS && now >= cached.at) return cached.report;
    const core = this.#o.core?.();
    const names = this.#o.names?.();
    const report = core ? headroomReport(core, { now, top, ...(names ? { names } : {}) }) : null;
    this.#headroom = { at: now, top, report };
    return report;
  }

  #tenantOf(e: UsageEvent): string | undefined {
    if (e.tenant !== undefined) {
      this.#tenantSource ??= "the usage events' tenant";
      return e.tenant;
    }
    if (e.descriptors.length === 0) return undefined;
    this.#currentRules();
    if (this.#tenantKeys.size === 0) return undefined;
    for (const d of e.descriptors) {
      for (const entry of d.entries) {
        if (!this.#tenantKeys.has(entry.key)) continue;
        if (this.#tenantSource === null) this.#tenantSource = this.#o.names?.().get(entry.key)?.label ?? entry.key;
        return entry.value;
      }
    }
    return undefined;
  }
}

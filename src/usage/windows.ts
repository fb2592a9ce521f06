// Rate-limit windows: the fixed interval of time a counter belongs to, computed from the time of the event that
// counts (a request's check, a usage event's end), never from when a replica happens to receive it. Every replica
// therefore puts the same event in the same window.
//
// Epoch-aligned (the default, as envoyproxy/ratelimit): a window is [floor(t / d) * d, that + d) for the unit's fixed
// divider d (src/utils/utilities.go UnitToDivider): second 1 s, minute 60 s, hour 3,600 s, day 86,400 s, week 7 days,
// month 30 days, year 365 days. So a "week" starts on Thursday 00:00 UTC (1970-01-01 was a Thursday), a "month" is a
// 30-day block and a "year" a 365-day block counted from the epoch; none of them follows the calendar. Envoy's API
// says the same of WEEK (envoyproxy/envoy#37494: "7 days rather than a natural week"; "YEAR is also not a natural
// year").
//
// Calendar-aligned (Tollgate's option, `calendar: { timeZone }`): day, week, month and year windows start at local
// midnight in an IANA time zone, so a monthly budget resets on the 1st and lasts 28 to 31 days, and a day lasts 23 or
// 25 hours across a DST change. A window starts at the first instant whose local date is the period's first day (the
// first instant after the gap when midnight itself does not exist). Second, minute and hour stay epoch-aligned:
// zones with offsets such as +05:30 would otherwise give hours that differ per zone for no benefit.
export type RateLimitUnitName = "second" | "minute" | "hour" | "day" | "week" | "month" | "year";

export const RATE_LIMIT_UNITS: readonly RateLimitUnitName[] = [
  "second",
  "minute",
  "hour",
  "day",
  "week",
  "month",
  "year",
];

/** envoyproxy/ratelimit's divider per unit, in seconds. */
export const UNIT_SECONDS: Readonly<Record<RateLimitUnitName, number>> = {
  second: 1,
  minute: 60,
  hour: 3_600,
  day: 86_400,
  week: 7 * 86_400,
  month: 30 * 86_400,
  year: 365 * 86_400,
};

export interface CalendarWindows {
  /** IANA time zone, e.g. "Europe/Paris" or "UTC". */
  readonly timeZone: string;
  /** First day of a week: 0 Sunday … 6 Saturday. Default 1 (Monday, ISO 8601). */
  readonly weekStartsOn?: number;
}

export interface WindowOptions {
  /** When set, day/week/month/year windows follow the calendar of this zone instead of the epoch. */
  readonly calendar?: CalendarWindows;
}

/** A window's stable name: `<start>/<end>` in epoch milliseconds. Equal intervals get equal ids on every replica. */
export type WindowId = string;

export interface Window {
  /** Epoch ms, inclusive. */
  readonly start: number;
  /** Epoch ms, exclusive. */
  readonly end: number;
  readonly id: WindowId;
}

/** The key of one counter in one window: a rule's counter key plus the window id. */
export type WindowKey = string;

export function windowKey(counterKey: string, id: WindowId): WindowKey {
  // "#" never occurs in a counter key (its parts are percent-encoded), so the split is unambiguous.
  return `${counterKey}#${id}`;
}

export function parseWindowId(id: WindowId): { start: number; end: number } | undefined {
  const m = /^(-?\d+)\/(-?\d+)$/.exec(id);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  return Number.isSafeInteger(start) && Number.isSafeInteger(end) && start < end ? { start, end } : undefined;
}

/** The window of `unit` that contains `eventTimeMs`: start <= eventTimeMs < end. */
export function windowOf(unit: RateLimitUnitName, eventTimeMs: number, options: WindowOptions = {}): Window {
  const t = Math.floor(eventTimeMs);
  const calendar = options.calendar;
  if (!calendar || UNIT_SECONDS[unit] < UNIT_SECONDS.day) return makeWindow(epochStart(unit, t), epochEnd(unit, t));
  return calendarWindow(unit as CalendarUnit, t, calendar);
}

/** An error message when the zone is not one Intl knows, else undefined. */
export function checkTimeZone(timeZone: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
    return undefined;
  } catch {
    return `Unknown time zone "${timeZone}"`;
  }
}

function epochStart(unit: RateLimitUnitName, t: number): number {
  const d = UNIT_SECONDS[unit] * 1000;
  return Math.floor(t / d) * d;
}

function epochEnd(unit: RateLimitUnitName, t: number): number {
  return epochStart(unit, t) + UNIT_SECONDS[unit] * 1000;
}

function makeWindow(start: number, end: number): Window {
  return { start, end, id: `${start}/${end}` };
}

// Calendar windows. Days are numbered from the epoch (day 0 = 1970-01-01) in the zone's local calendar.

type CalendarUnit = "day" | "week" | "month" | "year";
const DAY_MS = 86_400_000;

/** The last window computed per unit and zone: events arrive in time order, so most lookups hit it. */
const lastWindow = new Map<string, Window>();
const formatters = new Map<string, Intl.DateTimeFormat>();

function calendarWindow(unit: CalendarUnit, t: number, calendar: CalendarWindows): Window {
  const weekStartsOn = calendar.weekStartsOn ?? 1;
  const cacheKey = `${unit}|${calendar.timeZone}|${weekStartsOn}`;
  const cached = lastWindow.get(cacheKey);
  if (cached && cached.start <= t && t < cached.end) return cached;
  const zone = calendar.timeZone;
  let [first, next] = period(unit, localDay(zone, t), weekStartsOn);
  // The local date of t picks the period; the boundaries are computed separately, so in the rare zone where the
  // local date is not monotonic (a fall-back across midnight) t may sit just outside: step to the neighbour period.
  for (let i = 0; i < 4; i++) {
    if (t < boundary(zone, first)) [first, next] = period(unit, first - 1, weekStartsOn);
    else if (t >= boundary(zone, next)) [first, next] = period(unit, next, weekStartsOn);
    else break;
  }
  const window = makeWindow(boundary(zone, first), boundary(zone, next));
  lastWindow.set(cacheKey, window);
  return window;
}

/** The first day of the period containing `day`, and the first day of the next one. */
function period(unit: CalendarUnit, day: number, weekStartsOn: number): [number, number] {
  if (unit === "day") return [day, day + 1];
  if (unit === "week") {
    const weekday = (((day + 4) % 7) + 7) % 7; // day 0 was a Thursday (4)
    const first = day - (((weekday - weekStartsOn) % 7) + 7) % 7;
    return [first, first + 7];
  }
  const date = new Date(day * DAY_MS);
  const y = date.getUTCFullYear();
  if (unit === "month") {
    const m = date.getUTCMonth();
    return [Date.UTC(y, m, 1) / DAY_MS, Date.UTC(y, m + 1, 1) / DAY_MS];
  }
  return [Date.UTC(y, 0, 1) / DAY_MS, Date.UTC(y + 1, 0, 1) / DAY_MS];
}

/** The first instant whose local date in `zone` is `day` or later. */
function boundary(zone: string, day: number): number {
  const wall = day * DAY_MS; // local midnight read as if it were UTC
  const first = wall - offsetAt(zone, wall);
  const second = wall - offsetAt(zone, first);
  const found = [first, second].filter((c) => localDay(zone, c) >= day && localDay(zone, c - 1) < day);
  if (found.length > 0) return Math.min(...found);
  // Midnight falls in an offset change the two guesses missed: search the second where the date turns.
  let lo = Math.floor((wall - 2 * DAY_MS) / 1000);
  let hi = Math.ceil((wall + 2 * DAY_MS) / 1000);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDay(zone, mid * 1000) >= day) hi = mid;
    else lo = mid;
  }
  return hi * 1000;
}

function localDay(zone: string, t: number): number {
  const p = localParts(zone, t);
  return Date.UTC(p.year, p.month - 1, p.day) / DAY_MS;
}

/** Local wall time minus UTC at instant t, in ms (whole seconds: zone offsets never have a fraction of one). */
function offsetAt(zone: string, t: number): number {
  const p = localParts(zone, t);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(t / 1000) * 1000;
}

function localParts(zone: string, t: number): Record<"year" | "month" | "day" | "hour" | "minute" | "second", number> {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(zone, f);
  }
  const out = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const part of f.formatToParts(t)) {
    if (part.type in out) out[part.type as keyof typeof out] = Number(part.value);
  }
  return out;
}

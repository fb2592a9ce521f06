import fc from "fast-check";
import { assert, assertEquals } from "../../test/support/assert.ts";
import {
  checkTimeZone,
  parseWindowId,
  RATE_LIMIT_UNITS,
  type RateLimitUnitName,
  windowKey,
  windowOf,
  type WindowOptions,
} from "./windows.ts";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

// Epoch-aligned windows, as envoyproxy/ratelimit's divider makes them: [floor(t / d) * d, + d).
const epochCases: Array<{ unit: RateLimitUnitName; t: string; start: string; end: string }> = [
  { unit: "second", t: "2024-03-10T12:34:56.789Z", start: "2024-03-10T12:34:56.000Z", end: "2024-03-10T12:34:57.000Z" },
  { unit: "minute", t: "2024-03-10T12:34:56.789Z", start: "2024-03-10T12:34:00.000Z", end: "2024-03-10T12:35:00.000Z" },
  { unit: "hour", t: "2024-03-10T12:34:56.789Z", start: "2024-03-10T12:00:00.000Z", end: "2024-03-10T13:00:00.000Z" },
  { unit: "day", t: "2024-03-10T23:59:59.999Z", start: "2024-03-10T00:00:00.000Z", end: "2024-03-11T00:00:00.000Z" },
  // 1970-01-01 was a Thursday: epoch weeks run Thursday to Thursday, UTC.
  { unit: "week", t: "2024-03-10T12:00:00.000Z", start: "2024-03-07T00:00:00.000Z", end: "2024-03-14T00:00:00.000Z" },
  // 30-day blocks from the epoch, not calendar months: 2024-03-01 is day 19,783 = 659 blocks + 13 days.
  { unit: "month", t: "2024-03-01T00:00:00.000Z", start: "2024-02-17T00:00:00.000Z", end: "2024-03-18T00:00:00.000Z" },
  // 365-day blocks from the epoch: 2024-03-01 is day 19,783, in block 54 (from day 19,710 = 2023-12-19).
  { unit: "year", t: "2024-03-01T00:00:00.000Z", start: "2023-12-19T00:00:00.000Z", end: "2024-12-18T00:00:00.000Z" },
  { unit: "minute", t: "2024-03-10T12:35:00.000Z", start: "2024-03-10T12:35:00.000Z", end: "2024-03-10T12:36:00.000Z" },
];

for (const c of epochCases) {
  Deno.test(`windowOf puts ${c.t} in the ${c.unit} window [${c.start}, ${c.end})`, () => {
    const w = windowOf(c.unit, at(c.t));
    assertEquals([iso(w.start), iso(w.end)], [c.start, c.end]);
    assertEquals(w.id, `${w.start}/${w.end}`);
  });
}

// Calendar-aligned windows in a time zone: local midnights, real months, DST-length days.
const calendarCases: Array<{
  name: string;
  unit: RateLimitUnitName;
  options: WindowOptions;
  t: string;
  start: string;
  end: string;
}> = [
  {
    name: "a Paris month runs from local midnight on the 1st to the next 1st (31 days with a DST change)",
    unit: "month",
    options: { calendar: { timeZone: "Europe/Paris" } },
    t: "2024-03-31T21:59:59.999Z",
    start: "2024-02-29T23:00:00.000Z",
    end: "2024-03-31T22:00:00.000Z",
  },
  {
    name: "the last instant before a Paris midnight still belongs to the old month",
    unit: "month",
    options: { calendar: { timeZone: "Europe/Paris" } },
    t: "2024-02-29T22:59:59.999Z",
    start: "2024-01-31T23:00:00.000Z",
    end: "2024-02-29T23:00:00.000Z",
  },
  {
    name: "a New York day across the spring-forward change lasts 23 hours",
    unit: "day",
    options: { calendar: { timeZone: "America/New_York" } },
    t: "2024-03-10T12:00:00.000Z",
    start: "2024-03-10T05:00:00.000Z",
    end: "2024-03-11T04:00:00.000Z",
  },
  {
    name: "a New York day across the fall-back change lasts 25 hours",
    unit: "day",
    options: { calendar: { timeZone: "America/New_York" } },
    t: "2024-11-03T12:00:00.000Z",
    start: "2024-11-03T04:00:00.000Z",
    end: "2024-11-04T05:00:00.000Z",
  },
  {
    name: "a week starts on Monday by default",
    unit: "week",
    options: { calendar: { timeZone: "UTC" } },
    t: "2024-03-10T12:00:00.000Z",
    start: "2024-03-04T00:00:00.000Z",
    end: "2024-03-11T00:00:00.000Z",
  },
  {
    name: "a week can start on Sunday",
    unit: "week",
    options: { calendar: { timeZone: "UTC", weekStartsOn: 0 } },
    t: "2024-03-10T12:00:00.000Z",
    start: "2024-03-10T00:00:00.000Z",
    end: "2024-03-17T00:00:00.000Z",
  },
  {
    name: "a Tokyo year starts at local midnight on 1 January",
    unit: "year",
    options: { calendar: { timeZone: "Asia/Tokyo" } },
    t: "2024-06-01T00:00:00.000Z",
    start: "2023-12-31T15:00:00.000Z",
    end: "2024-12-31T15:00:00.000Z",
  },
  {
    // America/Santiago moved clocks from 00:00 to 01:00 on 2022-09-11: that day has no midnight.
    name: "a day without a local midnight starts when the clocks jump",
    unit: "day",
    options: { calendar: { timeZone: "America/Santiago" } },
    t: "2022-09-11T12:00:00.000Z",
    start: "2022-09-11T04:00:00.000Z",
    end: "2022-09-12T03:00:00.000Z",
  },
  {
    name: "an hour stays epoch-aligned in calendar mode, even in a +05:30 zone",
    unit: "hour",
    options: { calendar: { timeZone: "Asia/Kolkata" } },
    t: "2024-03-10T12:34:00.000Z",
    start: "2024-03-10T12:00:00.000Z",
    end: "2024-03-10T13:00:00.000Z",
  },
];

for (const c of calendarCases) {
  Deno.test(`windowOf in calendar mode: ${c.name}`, () => {
    const w = windowOf(c.unit, at(c.t), c.options);
    assertEquals([iso(w.start), iso(w.end)], [c.start, c.end]);
  });
}

const unitArb = fc.constantFrom(...RATE_LIMIT_UNITS);
// 1970 to 2100, where every runtime's time zone data is complete.
const timeArb = fc.integer({ min: 0, max: Date.UTC(2100, 0, 1) });
const zoneArb = fc.constantFrom("UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata");
const optionsArb: fc.Arbitrary<WindowOptions> = fc.oneof(
  fc.constant({}),
  fc.record({ calendar: fc.record({ timeZone: zoneArb, weekStartsOn: fc.integer({ min: 0, max: 6 }) }) }),
);

Deno.test("windowOf always puts an event time in [start, end) of its window", () => {
  fc.assert(fc.property(unitArb, timeArb, optionsArb, (unit, t, options) => {
    const w = windowOf(unit, t, options);
    return w.start <= t && t < w.end;
  }));
});

Deno.test("windowOf gives the same window to every time inside it, and the next window starts where it ends", () => {
  fc.assert(
    fc.property(unitArb, timeArb, optionsArb, fc.double({ min: 0, max: 1, noNaN: true }), (unit, t, options, f) => {
      const w = windowOf(unit, t, options);
      const inside = w.start + Math.floor(f * (w.end - w.start - 1));
      const next = windowOf(unit, w.end, options);
      const previous = windowOf(unit, w.start - 1, options);
      return windowOf(unit, inside, options).id === w.id && windowOf(unit, w.start, options).id === w.id &&
        windowOf(unit, w.end - 1, options).id === w.id && next.start === w.end && previous.end === w.start;
    }),
  );
});

Deno.test("windowOf lengths: epoch windows are exact dividers; calendar days last 23 to 25 hours, months 28 to 31 days", () => {
  fc.assert(fc.property(timeArb, zoneArb, (t, timeZone) => {
    const hour = 3_600_000;
    const day = windowOf("day", t, { calendar: { timeZone } });
    const month = windowOf("month", t, { calendar: { timeZone } });
    const epochMonth = windowOf("month", t);
    return day.end - day.start >= 23 * hour && day.end - day.start <= 25 * hour &&
      month.end - month.start >= 28 * 24 * hour - hour && month.end - month.start <= 31 * 24 * hour + hour &&
      epochMonth.end - epochMonth.start === 30 * 24 * hour;
  }));
});

Deno.test("parseWindowId reads back the interval of a window id and rejects anything else", () => {
  const w = windowOf("minute", at("2024-03-10T12:34:56Z"));
  assertEquals(parseWindowId(w.id), { start: w.start, end: w.end });
  assertEquals(parseWindowId("12/10"), undefined);
  assertEquals(parseWindowId("minute:12"), undefined);
});

Deno.test("windowKey joins a counter key and a window id", () => {
  assertEquals(windowKey("d|k=v", "0/60000"), "d|k=v#0/60000");
});

Deno.test("checkTimeZone accepts IANA zones and names the unknown one", () => {
  assertEquals(checkTimeZone("Europe/Paris"), undefined);
  assert(checkTimeZone("Mars/Olympus_Mons")?.includes('"Mars/Olympus_Mons"'));
});

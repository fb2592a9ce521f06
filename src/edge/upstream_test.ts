import { assertEquals } from "../../test/support/assert.ts";
import type { ClusterConfig, Endpoint, RetryPolicy } from "./config.ts";
import { pickEndpoint, priorityFor, retriableFailure, retriableStatus } from "./upstream.ts";

const ep = (host: string, weight: number): Endpoint => ({ host, port: 1, weight, tls: false, metadata: {} });

const policy: RetryPolicy = {
  retryOn: ["5xx"],
  numRetries: 2,
  perTryTimeoutMs: 0,
  retriableStatusCodes: [],
  previousPriorities: true,
  backOff: { baseMs: 25, maxMs: 250 },
};

Deno.test("pickEndpoint chooses by weight within a priority level", () => {
  const endpoints = [ep("a", 1), ep("b", 3)];
  const picks = [0, 0.24, 0.25, 0.99].map((r) => pickEndpoint(endpoints, () => r)!.host);
  assertEquals(picks, ["a", "a", "b", "b"]);
  assertEquals(pickEndpoint([ep("z", 0)], () => 0.5)!.host, "z");
  assertEquals(pickEndpoint([], () => 0.5), undefined);
});

Deno.test("priorityFor moves each retry to the next non-empty level with previous_priorities, and stays at 0 without", () => {
  const cluster: ClusterConfig = { name: "c", priorities: [[ep("a", 1)], [], [ep("c", 1)]], connectTimeoutMs: 1 };
  assertEquals([0, 1, 2, 3].map((n) => priorityFor(cluster, n, policy)), [0, 2, 0, 2]);
  assertEquals([0, 1, 2].map((n) => priorityFor(cluster, n, { ...policy, previousPriorities: false })), [0, 0, 0]);
  assertEquals(priorityFor({ ...cluster, priorities: [[]] }, 0, policy), -1);
});

Deno.test("retriableStatus follows retry_on: 5xx, gateway-error and retriable-status-codes", () => {
  const table: Array<[RetryPolicy["retryOn"], number[], number, boolean]> = [
    [["5xx"], [], 500, true],
    [["5xx"], [], 429, false],
    [["gateway-error"], [], 500, false],
    [["gateway-error"], [], 503, true],
    [["retriable-status-codes"], [429], 429, true],
    [["retriable-status-codes"], [429], 500, false],
    [["connect-failure"], [], 503, false],
  ];
  for (const [retryOn, codes, status, expected] of table) {
    assertEquals(
      retriableStatus(status, { ...policy, retryOn, retriableStatusCodes: codes }),
      expected,
      `${retryOn} ${status}`,
    );
  }
});

Deno.test("retriableFailure follows retry_on for connection failures, resets and per-try timeouts", () => {
  const table: Array<[RetryPolicy["retryOn"], Parameters<typeof retriableFailure>[0], boolean]> = [
    [["5xx"], "connect-failure", true],
    [["5xx"], "per-try-timeout", true],
    [["connect-failure"], "connect-failure", true],
    [["connect-failure"], "reset", false],
    [["reset"], "reset", true],
    [["reset"], "per-try-timeout", true],
    [["retriable-status-codes"], "reset", false],
  ];
  for (const [retryOn, failure, expected] of table) {
    assertEquals(retriableFailure(failure, { ...policy, retryOn }), expected, `${retryOn} ${failure}`);
  }
});

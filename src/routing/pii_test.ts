import assertModule from "node:assert/strict";
import { assert, assertEquals } from "../../test/support/assert.ts";
import { detectPii, PII_TYPES, type PiiType, piiTypes } from "./pii.ts";

/** The findings as "type:matched text", the easiest form to read in a failure. */
function found(text: string, types?: readonly PiiType[], allow?: readonly string[]): string[] {
  const options = { ...(types ? { types } : {}), ...(allow ? { allow } : {}) };
  return detectPii(text, options).map((f) => `${f.type}:${text.slice(f.start, f.end)}`);
}

const positives: Array<[string, string[]]> = [
  ["Write to jane.doe+news@example.co.uk today.", ["email:jane.doe+news@example.co.uk"]],
  ["<ops-team@sub.domain.io>", ["email:ops-team@sub.domain.io"]],
  ["Call +44 20 7946 0958 now", ["phone:+44 20 7946 0958"]],
  ["Call (415) 555-0132.", ["phone:(415) 555-0132"]],
  ["Dial 1-800-555-0199", ["phone:1-800-555-0199"]],
  ["Mobile 07700 900123", ["phone:07700 900123"]],
  ["Numéro: 01 42 68 53 00", ["phone:01 42 68 53 00"]],
  ["phone: 6505550123", ["phone:6505550123"]],
  ["Card 4111 1111 1111 1111 please", ["credit_card:4111 1111 1111 1111"]],
  ["amex 3782 822463 10005", ["credit_card:3782 822463 10005"]],
  ["pan=5555555555554444&x=1", ["credit_card:5555555555554444"]],
  ["Visa 4485 8529 6307 4182 03/27", ["credit_card:4485 8529 6307 4182"]],
  ["IBAN DE89 3704 0044 0532 0130 00, thanks", ["iban:DE89 3704 0044 0532 0130 00"]],
  ["GB82WEST12345698765432", ["iban:GB82WEST12345698765432"]],
  ["SSN 536-22-8190", ["us_ssn:536-22-8190"]],
  ["social security number: 287659921", ["us_ssn:287659921"]],
  ["NINO AB 12 34 56 C", ["uk_nino:AB 12 34 56 C"]],
  ["host 203.0.113.45 is down", ["ip_address:203.0.113.45"]],
  ["v6 2001:db8:85a3::8a2e:370:7334 up", ["ip_address:2001:db8:85a3::8a2e:370:7334"]],
  ["mapped ::ffff:192.0.2.128 too", ["ip_address:::ffff:192.0.2.128"]],
  ["key sk-proj-Xq81kZpL0vT3bN9wRy4HcD2fJ7mQa5Ue", ["api_key:sk-proj-Xq81kZpL0vT3bN9wRy4HcD2fJ7mQa5Ue"]],
  ["AKIAIOSFODNN7EXAMPLE", ["api_key:AKIAIOSFODNN7EXAMPLE"]],
  ["ghp_9fK2mQ7xL4vB8nR1tY6wZ3cJ5hD0pS2aE7uG", ["api_key:ghp_9fK2mQ7xL4vB8nR1tY6wZ3cJ5hD0pS2aE7uG"]],
  ["xoxb-2748193051-5829103746-Ab3dE9fGh2JkL7mNp4QrSt", ["api_key:xoxb-2748193051-5829103746-Ab3dE9fGh2JkL7mNp4QrSt"]],
  ["'secret_key': 'x9K2mQ7vL4pB8nR1tY6wZ3c'", ["api_key:x9K2mQ7vL4pB8nR1tY6wZ3c"]],
  ["postgres://app:Sup3rS3cret@db.internal/prod", ["api_key:Sup3rS3cret"]],
];

for (const [text, expected] of positives) {
  Deno.test(`detectPii finds ${expected.join(", ")}`, () => assertEquals(found(text), expected));
}

const negatives = [
  "Order #4839201756 shipped",
  "ISBN 978-0-13-468599-1 and 0-306-40615-2",
  "Meeting on 2024-03-15 at 14:30",
  "Upgrade 2.4.1 to 3.0.0; v1.2.3.4 is old",
  "Card 4111 1111 1111 1112 fails Luhn", // one digit off
  "IBAN DE89 3704 0044 0532 0130 01 is wrong", // bad mod-97
  "SSN 000-12-3456 and 666-12-3456 and 900-12-3456 are never issued",
  "id 550e8400-e29b-41d4-a716-446655440000",
  "Costs $1,249.99 or €1.149,00",
  "Netmask 255.255.255.0, localhost 127.0.0.1 and ::1, any 0.0.0.0",
  "Chrome 120.0.6099.109",
  "std::vector<int> v; add::bad; 12:30:45; MAC 00:1A:2B:3C:4D:5E",
  "api_key = os.environ['OPENAI_API_KEY']",
  "Replace sk-xxxxxxxxxxxxxxxxxxxxxxxx with your key",
  "Commit a1b2c3d4e5f67890abcdef1234567890abcdef12",
  "icon@2x.png and logo@3x.jpg",
  "NINO QQ 12 34 56 C is HMRC's example prefix",
  "Version 10.0.0.1 of the firmware",
];

for (const text of negatives) {
  Deno.test(`detectPii finds nothing in "${text}"`, () => assertEquals(found(text), []));
}

Deno.test("detectPii reports a bare 10-digit number as a phone only after a phone word", () => {
  assertEquals(found("order 6505550123"), []);
  assertEquals(found("call me on 6505550123"), ["phone:6505550123"]);
});

Deno.test("detectPii reports a bare 9-digit SSN only after an SSN word", () => {
  assertEquals(found("ticket 287659921"), []);
  assertEquals(found("SSN# 287659921"), ["us_ssn:287659921"]);
});

Deno.test("detectPii gives a card number to credit_card, not to phone", () => {
  assertEquals(found("4111-1111-1111-1111"), ["credit_card:4111-1111-1111-1111"]);
});

Deno.test("detectPii does not read the tail of an IBAN as a card number", () => {
  assertEquals(found("DE45 5001 0517 5407 3249 31 is not valid"), []);
});

Deno.test("detectPii returns findings in text order with exact offsets", () => {
  const text = "ip 10.1.2.3, mail a@b.io, ssn 123-45-6789";
  const findings = detectPii(text);
  assertEquals(findings.map((f) => f.type), ["ip_address", "email", "us_ssn"]);
  for (const f of findings) assert(f.start < f.end && text.slice(f.start, f.end).trim() === text.slice(f.start, f.end));
  assertEquals(findings[0], { type: "ip_address", start: 3, end: 11 });
});

Deno.test("detectPii looks only for the requested types", () => {
  const text = "a@b.io and 10.1.2.3";
  assertEquals(found(text, ["ip_address"]), ["ip_address:10.1.2.3"]);
  assertEquals(found(text, []), []);
});

Deno.test("detectPii rejects an unknown type", () => {
  assertModule.throws(() => detectPii("x", { types: ["passport" as PiiType] }), /Unknown PII type "passport"/);
});

Deno.test("detectPii skips literal allow-list entries, ignoring case", () => {
  const text = "Write to Support@Example.com or jane@corp.io";
  assertEquals(found(text, undefined, ["support@example.com"]), ["email:jane@corp.io"]);
});

Deno.test("detectPii skips values matching an allow-list regex", () => {
  const text = "a@example.com, b@example.com, c@corp.io, 10.0.0.1";
  assertEquals(found(text, undefined, ["/@example\\.com$/i", "/^10\\./"]), ["email:c@corp.io"]);
});

Deno.test("an allowed value still hides weaker findings inside it", () => {
  // The card is allowed; its digits must not come back as a phone number.
  assertEquals(found("card 4111 1111 1111 1111", undefined, ["4111 1111 1111 1111"]), []);
});

Deno.test("detectPii rejects an invalid allow-list regex with its entry in the message", () => {
  assertModule.throws(() => detectPii("x", { allow: ["/([/"] }), /Invalid PII allow-list regex \/\(\[\//);
});

Deno.test("detectPii finds a private key block, even when it is cut off", () => {
  const pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----";
  assertEquals(found(`key:\n${pem}\nthanks`), [`api_key:${pem}`]);
  assertEquals(detectPii("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg").map((f) => f.type), ["api_key"]);
});

Deno.test("detectPii accepts a JWT only when its header decodes to a JOSE header", () => {
  const header = btoa(JSON.stringify({ alg: "HS256", typ: "JWT" })).replace(/=+$/, "");
  const payload = btoa(JSON.stringify({ sub: "1234567890" })).replace(/=+$/, "");
  const jwt = `${header}.${payload}.kQ8fR2aP7LmN3xV9bT1cW5yZ0dH4`;
  assertEquals(found(`Bearer ${jwt}`), [`api_key:${jwt}`]);
  const notJose = `eyJub3RoaW5nIjoxfQ.${payload}.kQ8fR2aP7LmN3xV9bT1cW5yZ0dH4`;
  assertEquals(found(`Bearer ${notJose}`), []);
});

Deno.test("piiTypes lists each type once in PII_TYPES order", () => {
  const findings = detectPii("10.0.0.1 a@b.io 10.0.0.2 c@d.io");
  assertEquals(piiTypes(findings), ["email", "ip_address"]);
  assertEquals(PII_TYPES.length, new Set(PII_TYPES).size);
});

Deno.test("detectPii gets through long runs built to make regexes backtrack", () => {
  // Each of these took quadratic time in an earlier version; now they take milliseconds (see bench/guards_bench.ts).
  for (const text of ["12-".repeat(30_000), "a.".repeat(50_000) + "@", "1".repeat(100_000), "a:".repeat(50_000)]) {
    assertEquals(detectPii(text), [], text.slice(0, 12));
  }
  const pem = "-----BEGIN PRIVATE KEY-----\n" + "A".repeat(100_000);
  assertEquals(detectPii(pem), [{ type: "api_key", start: 0, end: pem.length }]);
});

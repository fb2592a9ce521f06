// Checksums and structural rules that turn a regex candidate into a PII finding. A pattern alone flags every
// 16-digit order number or dotted version string; these rules are what keep precision up without a model.

/** Luhn (ISO/IEC 7812-1) over a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/**
 * Card brands by issuer prefix and allowed lengths (ISO/IEC 7812 IIN ranges as the networks publish them). A
 * Luhn-valid number outside every range is not reported: one random number in ten passes Luhn.
 */
const CARD_RANGES: readonly { readonly prefix: RegExp; readonly lengths: readonly number[] }[] = [
  { prefix: /^4/, lengths: [13, 16, 19] }, // Visa
  { prefix: /^(5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)/, lengths: [16] }, // Mastercard
  { prefix: /^3[47]/, lengths: [15] }, // American Express
  { prefix: /^(6011|65|64[4-9])/, lengths: [16, 17, 18, 19] }, // Discover
  { prefix: /^(30[0-5]|3095|36|3[89])/, lengths: [14, 15, 16, 17, 18, 19] }, // Diners Club
  { prefix: /^35(2[89]|[3-8]\d)/, lengths: [16, 17, 18, 19] }, // JCB
  { prefix: /^62/, lengths: [16, 17, 18, 19] }, // UnionPay
  { prefix: /^(50|5[6-9]|6[0-9])/, lengths: [12, 13, 14, 15, 16, 17, 18, 19] }, // Maestro
];

/** A payment card number: known issuer range and length, and a valid Luhn check digit. */
export function cardNumberValid(digits: string): boolean {
  if (!/^\d{12,19}$/.test(digits) || /^(\d)\1+$/.test(digits)) return false;
  const inRange = CARD_RANGES.some((r) => r.prefix.test(digits) && r.lengths.includes(digits.length));
  return inRange && luhnValid(digits);
}

/** IBAN length per country (ISO 13616 registry). */
// deno-fmt-ignore
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28, CH: 21, CR: 22,
  CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FK: 18, FO: 18, FR: 27, GB: 22,
  GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HN: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30,
  KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20,
  MR: 27, MT: 31, MU: 30, NI: 28, NL: 18, NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22,
  RU: 33, SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26,
  UA: 29, VA: 22, VG: 24, XK: 20, YE: 30,
};

/** An IBAN without spaces, upper case: known country, its length, and the ISO 7064 mod-97-10 check equal to 1. */
export function ibanValid(iban: string): boolean {
  const length = IBAN_LENGTHS[iban.slice(0, 2)];
  if (length === undefined || iban.length !== length || !/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(iban)) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    // Letters count as two digits, A = 10 … Z = 35; the remainder is folded digit by digit to stay small.
    const value = code >= 65 ? String(code - 55) : ch;
    for (const d of value) remainder = (remainder * 10 + (d.charCodeAt(0) - 48)) % 97;
  }
  return remainder === 1;
}

/** Numbers the Social Security Administration published as examples, never issued. */
const ADVERTISED_SSNS = new Set(["078051120", "219099999", "457555462"]);

/**
 * A US Social Security number by the SSA's issuing rules: area 001–899 except 666, group 01–99, serial 0001–9999.
 * (Randomised issuance since 2011 made the old per-state area table meaningless; these rules still hold.)
 */
export function ssnValid(area: string, group: string, serial: string): boolean {
  const a = Number(area);
  if (a === 0 || a === 666 || a >= 900) return false;
  if (Number(group) === 0 || Number(serial) === 0) return false;
  return !ADVERTISED_SSNS.has(area + group + serial);
}

/** Two-letter prefixes HMRC never issues for a National Insurance number. */
const NINO_BAD_PREFIXES = new Set(["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"]);

/** A UK National Insurance number prefix (the regex already excludes D, F, I, Q, U, V and O as second letter). */
export function ninoPrefixValid(prefix: string): boolean {
  return !NINO_BAD_PREFIXES.has(prefix);
}

/** Dotted-quad IPv4, each part 0–255 without leading zeros. Returns the four octets or undefined. */
export function parseIpv4(text: string): [number, number, number, number] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const octets: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    octets.push(n);
  }
  return octets as [number, number, number, number];
}

const MASK_OCTETS = new Set([0, 128, 192, 224, 240, 248, 252, 254, 255]);

/**
 * IPv4 addresses that identify no one: the unspecified address, loopback and netmasks (255.x.x.x with contiguous
 * mask octets). They are reported by no detector because they reveal nothing about a person or a network.
 */
export function ipv4Uninformative(o: readonly [number, number, number, number]): boolean {
  if (o.every((n) => n === 0) || o[0] === 127) return true;
  if (o[0] !== 255 || !o.every((n) => MASK_OCTETS.has(n))) return false;
  // Contiguous: once an octet is below 255, every later octet is 0.
  const firstPartial = o.findIndex((n) => n !== 255);
  return firstPartial === -1 || o.slice(firstPartial + 1).every((n) => n === 0);
}

/**
 * An IPv6 address (RFC 4291 text forms: eight groups of 1–4 hex digits, one `::` for a run of zero groups, an
 * optional dotted IPv4 tail). Loopback `::1` and unspecified `::` are rejected like their IPv4 counterparts, and so is
 * a compressed form without a single decimal digit, so that `add::bad` or `cafe::face` in code are not addresses.
 */
export function ipv6Valid(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  const doubles = text.split("::").length - 1;
  if (doubles > 1) return false;
  let body = text;
  const lastColon = body.lastIndexOf(":");
  if (body.slice(lastColon + 1).includes(".")) {
    // A dotted IPv4 tail stands for the last two groups.
    if (!parseIpv4(body.slice(lastColon + 1))) return false;
    body = body.slice(0, lastColon + 1) + "0:0";
  }
  const hexGroup = /^[0-9A-Fa-f]{1,4}$/;
  let groups: number;
  if (doubles === 1) {
    const [head = "", tail = ""] = body.split("::");
    const h = head === "" ? [] : head.split(":");
    const t = tail === "" ? [] : tail.split(":");
    if (![...h, ...t].every((g) => hexGroup.test(g))) return false;
    groups = h.length + t.length;
    if (groups > 7) return false;
    if (groups === 0 || text === "::1") return false;
    if (!/\d/.test(text)) return false;
  } else {
    const g = body.split(":");
    if (!g.every((x) => hexGroup.test(x))) return false;
    groups = g.length;
    if (groups !== 8) return false;
  }
  return true;
}

/** A JWT's first segment decodes to a JSON object with an `alg` or `typ` (RFC 7515 / 7519). */
export function jwtHeaderValid(segment: string): boolean {
  try {
    const b64 = segment.replace(/-/g, "+").replace(/_/g, "/");
    const header: unknown = JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
    return typeof header === "object" && header !== null && ("alg" in header || "typ" in header);
  } catch {
    return false;
  }
}

/**
 * Looks like a generated secret rather than a word, placeholder or identifier: at least `minDistinct` different
 * characters, at least one digit and one letter, and no run of one character longer than 4 (`xxxxxxxx`).
 */
export function secretLike(value: string, minDistinct = 8): boolean {
  if (!/\d/.test(value) || !/[A-Za-z]/.test(value)) return false;
  if (/(.)\1{4,}/.test(value)) return false;
  return new Set(value).size >= minDistinct;
}

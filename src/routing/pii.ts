// PII detection without a model: one regex per shape of identifier, then a validator (checksum, issuing rules,
// address parsing) before anything is reported. Numbers that carry no structure of their own (a bare 10-digit phone
// number, a bare 9-digit SSN) are reported only when a word such as "phone" or "SSN" stands shortly before them.
//
// Findings never overlap: when two detectors claim the same characters, the one with the stronger evidence wins
// (a secret over a card number, a Luhn-checked card over a phone-shaped run of digits).
import {
  cardNumberValid,
  ibanValid,
  ipv4Uninformative,
  ipv6Valid,
  jwtHeaderValid,
  ninoPrefixValid,
  parseIpv4,
  secretLike,
  ssnValid,
} from "./pii_validators.ts";

export type PiiType =
  | "email"
  | "phone"
  | "credit_card"
  | "iban"
  | "us_ssn"
  | "uk_nino"
  | "ip_address"
  | "api_key";

export const PII_TYPES: readonly PiiType[] = [
  "email",
  "phone",
  "credit_card",
  "iban",
  "us_ssn",
  "uk_nino",
  "ip_address",
  "api_key",
];

export interface PiiFinding {
  readonly type: PiiType;
  /** UTF-16 offsets into the text, end exclusive. */
  readonly start: number;
  readonly end: number;
}

export interface PiiOptions {
  /** Only these types are looked for (default: all of PII_TYPES). */
  readonly types?: readonly PiiType[];
  /**
   * Values that are never reported: a literal (compared with the matched text, ignoring case) or `/regex/flags`
   * (tested against the matched text, unanchored).
   */
  readonly allow?: readonly string[];
}

interface Candidate extends PiiFinding {
  /** Higher wins an overlap. */
  readonly rank: number;
}

type Detector = (text: string, out: Candidate[]) => void;

/** How far before a bare number its context word may stand. */
const CONTEXT_CHARS = 40;

// An identifier starts where no word character, sign or joining punctuation precedes it, and ends where no word
// character or punctuation-plus-digit follows (so "1.2.3.4.5" or "123-45-6789-0" never yield a shorter match).
const B = String.raw`(?<![\w+.\-])`;
const E = String.raw`(?![\w]|[.\-]\d)`;

function contextBefore(text: string, start: number, words: RegExp): boolean {
  return words.test(text.slice(Math.max(0, start - CONTEXT_CHARS), start));
}

function scan(re: RegExp, text: string, each: (m: RegExpExecArray) => void): void {
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) each(m);
}

// ---- email ----

const EMAIL = new RegExp(
  String.raw`(?<![\w.%+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?@` +
    String.raw`((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w\-]|\.[A-Za-z0-9])`,
  "g",
);
// "icon@2x.png" is an asset name, not an address.
const FILE_SUFFIX = /\.(png|jpe?g|gif|svg|webp|bmp|ico|tiff?)$/i;

const detectEmail: Detector = (text, out) =>
  scan(EMAIL, text, (m) => {
    const [match, domain = ""] = m;
    if (match.includes("..") || FILE_SUFFIX.test(domain)) return;
    out.push({ type: "email", start: m.index, end: m.index + match.length, rank: 5 });
  });

// ---- phone ----

// International: "+" and a country code, then groups; E.164 allows at most 15 digits.
const PHONE_INTL = new RegExp(
  String.raw`(?<![\w+])\+\d{1,3}(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}${E}`,
  "g",
);
// North American Numbering Plan: (NXX) NXX-XXXX or NXX-NXX-XXXX, optionally after 1.
const PHONE_NANP = new RegExp(
  B + String.raw`(?:1[ .\-]?)?(?:\([2-9]\d{2}\)[ .\-]?|[2-9]\d{2}[ .\-])[2-9]\d{2}[ .\-]\d{4}` + E,
  "g",
);
// National numbers with a trunk 0, grouped: "020 7946 0958", "07700 900123", "01 23 45 67 89", "(030) 1234567".
const PHONE_TRUNK = new RegExp(B + String.raw`(?:\(0\d{1,4}\)|0\d{1,4})(?:[ .\-]?\d{2,4}){1,4}` + E, "g");
// Bare digit runs need a context word.
const PHONE_BARE = new RegExp(B + String.raw`\d{10,11}` + E, "g");
const PHONE_WORDS =
  /\b(phone|telephone|tel|mobile|cell|cellphone|call|ring|text|sms|whatsapp|fax|contact|reach)\b[^\n]*$/i;

function digitCount(s: string): number {
  return s.replace(/\D/g, "").length;
}

function nanp(digits: string): boolean {
  return /^1?[2-9]\d{2}[2-9]\d{6}$/.test(digits);
}

const detectPhone: Detector = (text, out) => {
  scan(PHONE_INTL, text, (m) => {
    const n = digitCount(m[0]);
    if (n >= 8 && n <= 15) out.push({ type: "phone", start: m.index, end: m.index + m[0].length, rank: 2 });
  });
  scan(PHONE_NANP, text, (m) => out.push({ type: "phone", start: m.index, end: m.index + m[0].length, rank: 2 }));
  scan(PHONE_TRUNK, text, (m) => {
    const n = digitCount(m[0]);
    // A separator is required: an unbroken run of digits is handled (with context) below.
    if (n >= 10 && n <= 11 && /[ .\-()]/.test(m[0])) {
      out.push({ type: "phone", start: m.index, end: m.index + m[0].length, rank: 2 });
    }
  });
  scan(PHONE_BARE, text, (m) => {
    const digits = m[0];
    const shaped = nanp(digits) || (/^0[1-9]/.test(digits) && digits.length >= 10);
    if (shaped && contextBefore(text, m.index, PHONE_WORDS)) {
      out.push({ type: "phone", start: m.index, end: m.index + digits.length, rank: 1 });
    }
  });
};

// ---- payment cards ----

// Not right after another group of digits either: "DE45 5001 0517 …" is the tail of an IBAN, not a card.
const CARD = new RegExp(String.raw`(?<![\w+.\-]|\d[ \-])\d(?:[ \-]?\d){11,18}` + E, "g");

/** Card numbers are written unbroken or in groups of 4 (Amex and Diners: 4-6-5 / 4-6-4), one kind of separator. */
function cardGrouping(raw: string): boolean {
  if (/^\d+$/.test(raw)) return true;
  const sep = raw.includes(" ") ? " " : "-";
  if (raw.includes(sep === " " ? "-" : " ")) return false;
  const groups = raw.split(sep).map((g) => g.length);
  const fours = groups.slice(0, -1).every((g) => g === 4) && groups.at(-1)! >= 1 && groups.at(-1)! <= 4;
  const amex = groups.length === 3 && groups[0] === 4 && groups[1] === 6 && (groups[2] === 5 || groups[2] === 4);
  return fours || amex;
}

const detectCard: Detector = (text, out) =>
  scan(CARD, text, (m) => {
    // The run may have swallowed a following number ("4485 … 4182 03/27"): drop trailing groups until it fits.
    for (let raw = m[0]; raw.replace(/\D/g, "").length >= 12;) {
      if (cardGrouping(raw) && cardNumberValid(raw.replace(/\D/g, ""))) {
        out.push({ type: "credit_card", start: m.index, end: m.index + raw.length, rank: 7 });
        return;
      }
      const cut = Math.max(raw.lastIndexOf(" "), raw.lastIndexOf("-"));
      if (cut <= 0) return;
      raw = raw.slice(0, cut);
    }
  });

// ---- IBAN ----

const IBAN = /(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,30}/g;

const detectIban: Detector = (text, out) =>
  scan(IBAN, text, (m) => {
    // The regex may run on into the next word; take exactly as many characters as the country's IBAN has.
    const raw = m[0];
    for (let cut = raw.length; cut >= 14; cut--) {
      const part = raw.slice(0, cut);
      if (part.endsWith(" ")) continue;
      const compact = part.replace(/ /g, "");
      if (ibanValid(compact) && !/[\w]/.test(text.charAt(m.index + cut))) {
        out.push({ type: "iban", start: m.index, end: m.index + cut, rank: 6 });
        IBAN.lastIndex = m.index + cut;
        return;
      }
    }
  });

// ---- US SSN and UK NINO ----

const SSN_DASHED = new RegExp(B + String.raw`(\d{3})-(\d{2})-(\d{4})` + E, "g");
const SSN_OTHER = new RegExp(B + String.raw`(\d{3}) ?(\d{2}) ?(\d{4})` + E, "g");
const SSN_WORDS = /\b(ssn|ss#|social security|social-security|soc\.? sec\.?|taxpayer id|tin)\b[^\n]*$/i;

const detectSsn: Detector = (text, out) => {
  scan(SSN_DASHED, text, (m) => {
    if (ssnValid(m[1]!, m[2]!, m[3]!)) {
      out.push({ type: "us_ssn", start: m.index, end: m.index + m[0].length, rank: 4 });
    }
  });
  scan(SSN_OTHER, text, (m) => {
    if (ssnValid(m[1]!, m[2]!, m[3]!) && contextBefore(text, m.index, SSN_WORDS)) {
      out.push({ type: "us_ssn", start: m.index, end: m.index + m[0].length, rank: 4 });
    }
  });
};

const NINO = /(?<![\w])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?![\w])/g;

const detectNino: Detector = (text, out) =>
  scan(NINO, text, (m) => {
    if (ninoPrefixValid(m[1]!)) out.push({ type: "uk_nino", start: m.index, end: m.index + m[0].length, rank: 4 });
  });

// ---- IP addresses ----

const IPV4 = /(?<![\w.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)/g;
// Version strings look like addresses: "v1.2.3.4", "version 10.0.0.1".
const VERSION_BEFORE = /(\bv|\bversion\s*|\bver\.?\s*|\brelease\s*|\bbuild\s*)$/i;
const IPV6 = /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:]|\.\d)/g;

const detectIp: Detector = (text, out) => {
  scan(IPV4, text, (m) => {
    const octets = parseIpv4(m[0]);
    if (!octets || ipv4Uninformative(octets)) return;
    if (VERSION_BEFORE.test(text.slice(Math.max(0, m.index - 12), m.index))) return;
    out.push({ type: "ip_address", start: m.index, end: m.index + m[0].length, rank: 3 });
  });
  scan(IPV6, text, (m) => {
    if (ipv6Valid(m[0])) out.push({ type: "ip_address", start: m.index, end: m.index + m[0].length, rank: 3 });
  });
};

// ---- secrets ----

interface SecretPattern {
  readonly re: RegExp;
  /** Which capture group is the secret (default: the whole match). */
  readonly group?: number;
  readonly check?: (value: string) => boolean;
}

const SECRET_PATTERNS: readonly SecretPattern[] = [
  // OpenAI (sk-, sk-proj-, sk-svcacct-) and Anthropic (sk-ant-api03-…) keys.
  { re: /(?<![\w\-])sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d\d-)?[A-Za-z0-9_\-]{20,}/g, check: secretLike },
  // AWS access key ids.
  { re: /(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])/g },
  // GitHub tokens (classic and fine-grained).
  { re: /(?<![\w])gh[pousr]_[A-Za-z0-9]{36,255}(?![\w])/g },
  { re: /(?<![\w])github_pat_[A-Za-z0-9_]{60,255}(?![\w])/g },
  // GitLab personal access tokens.
  { re: /(?<![\w])glpat-[A-Za-z0-9_\-]{20,}(?![\w\-])/g },
  // Slack tokens and incoming webhooks.
  { re: /(?<![\w])xox[abposr]-(?:\d+-)*[A-Za-z0-9\-]{10,}(?![\w])/g },
  { re: /https:\/\/hooks\.slack\.com\/services\/T[A-Z0-9]+\/B[A-Z0-9]+\/[A-Za-z0-9]{16,}/g },
  // Google API keys.
  { re: /(?<![\w\-])AIza[0-9A-Za-z_\-]{35}(?![\w\-])/g },
  // Stripe secret and restricted keys (publishable pk_ keys are public by design).
  { re: /(?<![\w])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}(?![\w])/g },
  // Hugging Face, npm, SendGrid, Twilio API key SIDs.
  { re: /(?<![\w])hf_[A-Za-z0-9]{30,}(?![\w])/g, check: secretLike },
  { re: /(?<![\w])npm_[A-Za-z0-9]{36}(?![\w])/g },
  { re: /(?<![\w])SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}(?![\w\-])/g },
  { re: /(?<![\w])SK[0-9a-f]{32}(?![\w])/g },
  // JSON Web Tokens: three base64url segments, the first a JOSE header.
  {
    re: /(?<![\w\-])(eyJ[A-Za-z0-9_\-]{8,})\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}(?![\w\-])/g,
    check: (v) => jwtHeaderValid(v.slice(0, v.indexOf("."))),
  },
  // PEM private key blocks, to the END line or, if cut off, to the end of the text.
  {
    re: new RegExp(
      String.raw`-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?)PRIVATE KEY( BLOCK)?-----[\s\S]*?` +
        String.raw`(?:-----END \1PRIVATE KEY\2-----|$)`,
      "g",
    ),
  },
  // Passwords in URLs: scheme://user:password@host.
  // (Every unbounded run here starts where the token starts: a regex that may start anywhere inside a long run and
  // scan to its end costs quadratic time on a prompt made of one long token.)
  { re: /(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]{0,30}:\/\/[^\s:/@]{1,256}:([^\s:/@]{3,256})@[\w.\-]+/gi, group: 1 },
  // A secret-looking value assigned to a secret-sounding name: api_key = "…", "client_secret": "…", token: …
  {
    re: new RegExp(
      String.raw`(?<![\w\-])[\w\-]{0,40}?(?:api[_\-]?key|apikey|secret|token|passwd|password|` +
        String.raw`access[_\-]?key|auth[_\-]?key|private[_\-]?key|credential)s?[\w\-]{0,40}` +
        String.raw`["']?\s*(?:[:=]|=>)\s*["']?([A-Za-z0-9_\-/+=.~]{16,})`,
      "gi",
    ),
    group: 1,
    check: (v) => secretLike(v, 10),
  },
];

const detectSecrets: Detector = (text, out) => {
  for (const p of SECRET_PATTERNS) {
    scan(p.re, text, (m) => {
      const value = p.group === undefined ? m[0] : m[p.group];
      if (value === undefined || (p.check && !p.check(value))) return;
      const start = p.group === undefined ? m.index : m.index + m[0].lastIndexOf(value);
      out.push({ type: "api_key", start, end: start + value.length, rank: 8 });
    });
  }
};

const DETECTORS: Readonly<Record<PiiType, Detector>> = {
  email: detectEmail,
  phone: detectPhone,
  credit_card: detectCard,
  iban: detectIban,
  us_ssn: detectSsn,
  uk_nino: detectNino,
  ip_address: detectIp,
  api_key: detectSecrets,
};

// ---- allow lists ----

type AllowRule = (value: string) => boolean;

const allowCache = new Map<string, AllowRule>();

/** Compiles one allow-list entry; `/source/flags` is a regex, anything else a literal. Throws on a bad regex. */
export function compileAllowRule(entry: string): AllowRule {
  const cached = allowCache.get(entry);
  if (cached) return cached;
  let rule: AllowRule;
  const re = /^\/(.+)\/([a-z]*)$/s.exec(entry);
  if (re) {
    let compiled: RegExp;
    try {
      compiled = new RegExp(re[1]!, re[2]!.replace(/[gy]/g, ""));
    } catch (err) {
      throw new Error(`Invalid PII allow-list regex ${entry}: ${(err as Error).message}`, { cause: err });
    }
    rule = (value) => compiled.test(value);
  } else {
    const literal = entry.toLowerCase();
    rule = (value) => value.toLowerCase() === literal;
  }
  if (allowCache.size < 1000) allowCache.set(entry, rule);
  return rule;
}

/** Finds PII in `text`: non-overlapping findings in text order. Pure; safe to call concurrently. */
export function detectPii(text: string, options: PiiOptions = {}): PiiFinding[] {
  const types = options.types ?? PII_TYPES;
  const candidates: Candidate[] = [];
  for (const type of new Set(types)) {
    const detector = DETECTORS[type];
    if (!detector) throw new Error(`Unknown PII type "${type}": expected one of ${PII_TYPES.join(", ")}`);
    detector(text, candidates);
  }
  const allow = (options.allow ?? []).map(compileAllowRule);
  // Strongest evidence first, then longer, then earlier; keep whatever does not overlap what was kept.
  candidates.sort((a, b) => b.rank - a.rank || (b.end - b.start) - (a.end - a.start) || a.start - b.start);
  // An allowed value still claims its characters: a card number on the allow list must not resurface as a phone.
  const claimed: { finding: PiiFinding; allowed: boolean }[] = [];
  for (const c of candidates) {
    if (claimed.some(({ finding: k }) => c.start < k.end && k.start < c.end)) continue;
    const value = text.slice(c.start, c.end);
    claimed.push({ finding: { type: c.type, start: c.start, end: c.end }, allowed: allow.some((rule) => rule(value)) });
  }
  return claimed.filter((c) => !c.allowed).map((c) => c.finding).sort((a, b) => a.start - b.start);
}

/** The distinct types among `findings`, in PII_TYPES order. */
export function piiTypes(findings: readonly PiiFinding[]): PiiType[] {
  const seen = new Set(findings.map((f) => f.type));
  return PII_TYPES.filter((t) => seen.has(t));
}

// Views of a prompt for the jailbreak patterns. Attackers hide trigger phrases from naive filters with tricks that a
// reader still understands: "1gn0r3 pr3v10us", "i g n o r e", "ign<U+200B>ore" with a zero-width space, Cyrillic
// "о" for Latin "o", full-width letters, accents, base64. Every view is lower case with runs of spaces collapsed.
//
//   plain    Unicode compatibility forms folded (NFKD), accents, zero-width and bidi characters removed, look-alike
//            letters mapped to Latin, typographic quotes made ASCII
//   deobfuscated  plain, then leetspeak digits and symbols inside words read as letters, punctuation inside words
//            dropped, and letters spelt out one at a time joined ("i.g.n.o.r.e" → "ignore")
//   compact  deobfuscated without any separator, only when a long run of single letters suggests every space was
//            replaced ("i g n o r e a l l" → "ignoreall")

// Zero-width spaces and joiners, soft hyphen, word joiner and invisible operators, bidi controls, BOM, tag characters.
const INVISIBLE =
  /[\u00AD\u034F\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF]|\uDB40[\uDC00-\uDC7F]/g;

// Cyrillic and Greek letters that render like Latin ones (the subset used for spoofing text, not the full
// Unicode confusables table).
// deno-fmt-ignore
const LOOKALIKES: Readonly<Record<string, string>> = {
  "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
  "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ɑ": "a",
  "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
  "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ß": "ss",
};
const LOOKALIKE_RE = new RegExp(`[${Object.keys(LOOKALIKES).join("")}]`, "g");

// deno-fmt-ignore
const LEET: Readonly<Record<string, string>> = {
  "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s", "!": "i",
  "|": "l", "+": "t", "€": "e",
};

export interface PromptViews {
  readonly plain: string;
  /** Undefined when it would equal `plain`. */
  readonly deobfuscated: string | undefined;
  readonly compact: string | undefined;
  /** The raw text had invisible characters between letters. */
  readonly invisible: boolean;
  /** A word mixed Latin letters with Cyrillic or Greek ones. */
  readonly mixedScripts: boolean;
}

const MIXED_SCRIPT_WORD = /(?=\p{L}*\p{Script=Latin})(?=\p{L}*[\p{Script=Cyrillic}\p{Script=Greek}])\p{L}{2,}/u;

const NON_ASCII = /[^\t\n\r\x20-\x7e]/;

export function plainView(text: string): string {
  let t = text;
  // Most prompts are ASCII: the Unicode folding below is then a no-op, and skipping it halves the cost of a view.
  if (NON_ASCII.test(t)) {
    t = t
      .replace(INVISIBLE, "")
      .normalize("NFKD")
      .replace(/\p{M}+/gu, "")
      .toLowerCase()
      .replace(LOOKALIKE_RE, (ch) => LOOKALIKES[ch] ?? ch)
      .replace(/[‘’‚‛′´]/g, "'")
      .replace(/[“”„‟″]/g, '"');
  } else {
    t = t.toLowerCase();
  }
  return t.replace(/`/g, "'").replace(/[^\S\n]+/g, " ").replace(/ ?\n\s*/g, "\n").trim();
}

// Tokens that may be leetspeak; only those with a letter and a leet character are rewritten ("1gn0r3", "pr3v10us",
// "@ll"), so pure numbers ("2024", "3.5") are left alone.
const LEET_TOKEN = /[a-z0-9@$!|+€]+/g;
const HAS_LETTER = /[a-z]/;
const HAS_LEET = /[0-9@$!|+€]/;
const LEET_CHAR = /[a-z][0-9@$!|+€]|[0-9@$!|+€][a-z]/;

function deleet(word: string): string {
  if (!HAS_LETTER.test(word) || !HAS_LEET.test(word)) return word;
  // "!" and "|" end sentences and separate table cells: only read as letters when a letter or digit follows.
  return word.replace(/[0-9@$!|+€](?=(.?))/g, (ch, next: string) => {
    if ((ch === "!" || ch === "|" || ch === "+") && !/[a-z0-9]/.test(next)) return ch;
    return LEET[ch] ?? ch;
  });
}

// Three or more single characters separated by one separator: "i g n o r e", "i.g.n.o.r.e", "i-g-n".
const SPELT_OUT = /(?<![a-z0-9])(?:[a-z0-9][ .\-_*/|,]){2,}[a-z0-9](?![a-z0-9])/g;
// Punctuation inserted inside a word: "ig.nore", "pre-vious", "in_struc*tions".
// (Apostrophes stay: patterns accept "don't" and "dont" alike, and every "it's" would otherwise make a second view.)
const INNER_PUNCTUATION = /(?<=[a-z])[.\-_*~^`"|]+(?=[a-z])/g;

const LONG_SPELT = /(?:\b[a-z0-9]\b[^a-z0-9\n]{1,3}){12,}/;
const INVISIBLE_IN_WORD = /\p{L}[\u00AD\u200B-\u200F\u2060-\u2064\uFEFF]+\p{L}/u;
const CYRILLIC_OR_GREEK = /[\u0370-\u03FF\u0400-\u04FF\u0500-\u052F]/;

export function promptViews(text: string): PromptViews {
  const plain = plainView(text);
  const leet = LEET_CHAR.test(plain) ? plain.replace(LEET_TOKEN, deleet) : plain;
  let spelt = false;
  const deob = leet
    .replace(INNER_PUNCTUATION, "")
    .replace(SPELT_OUT, (run) => {
      spelt = true;
      return run.replace(/[ .\-_*/|,]/g, "");
    })
    .replace(/ {2,}/g, " ");
  const compact = spelt && LONG_SPELT.test(leet) ? deob.replace(/[^a-z0-9]+/g, "") : undefined;
  return {
    plain,
    deobfuscated: deob === plain ? undefined : deob,
    compact,
    // Both tests scan letter by letter; the cheap character-class test first keeps plain ASCII prompts fast.
    invisible: INVISIBLE.test(text) && INVISIBLE_IN_WORD.test(text),
    mixedScripts: CYRILLIC_OR_GREEK.test(text) && MIXED_SCRIPT_WORD.test(text),
  };
}

/**
 * Base64 and hex runs that decode to readable text (at least 85 % printable ASCII and some letters), for scoring
 * what they hide. At most `limit` payloads, each at most 4 KiB decoded.
 */
export function decodedPayloads(text: string, limit = 4): string[] {
  const out: string[] = [];
  const add = (decoded: string | undefined) => decoded !== undefined && out.length < limit && out.push(decoded);
  // Token by token rather than one regex over the text: a regex with look-arounds tried at every offset of a long
  // prompt costs tens of microseconds, splitting costs a few.
  let hexRun = "";
  const flushHex = () => {
    if (hexRun.length >= 32) add(readable(() => Uint8Array.from(hexRun.match(/../g) ?? [], (h) => parseInt(h, 16))));
    hexRun = "";
  };
  for (const token of text.split(/[\s"'`,;()<>[\]{}]+/)) {
    if (out.length >= limit) break;
    if (token.length >= 20) {
      for (const part of token.split(":")) {
        if (part.length >= 20 && BASE64_TOKEN.test(part) && /[A-Z]/.test(part) && /[a-z]/.test(part)) {
          add(
            readable(() =>
              Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")), (c) => c.charCodeAt(0))
            ),
          );
        }
      }
    }
    // Hex, unbroken or in byte pairs separated by spaces or colons.
    const hex = token.includes(":") ? token.replace(/:/g, "") : token;
    if (hex.length >= 2 && hex.length % 2 === 0 && HEX_TOKEN.test(hex)) hexRun += hex;
    else flushHex();
  }
  flushHex();
  return out;
}

const BASE64_TOKEN = /^[A-Za-z0-9+/]+={0,2}$/;
const HEX_TOKEN = /^[0-9A-Fa-f]+$/;

function readable(decode: () => Uint8Array): string | undefined {
  let bytes: Uint8Array;
  try {
    bytes = decode().subarray(0, 4096);
  } catch {
    return undefined;
  }
  if (bytes.length < 12) return undefined;
  let printable = 0;
  for (const b of bytes) if ((b >= 32 && b < 127) || b === 9 || b === 10 || b === 13) printable++;
  if (printable / bytes.length < 0.85) return undefined;
  const text = new TextDecoder().decode(bytes);
  return /[A-Za-z]{3,} [A-Za-z]{2,}/.test(text) ? text : undefined;
}

/** ROT13 of the letters, for prompts that announce a ROT13 payload. */
export function rot13(text: string): string {
  return text.replace(/[a-z]/gi, (c) => {
    const base = c <= "Z" ? 65 : 97;
    return String.fromCharCode(((c.charCodeAt(0) - base + 13) % 26) + base);
  });
}

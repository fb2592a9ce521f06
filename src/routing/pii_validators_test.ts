import fc from "fast-check";
import { assert, assertEquals } from "../../test/support/assert.ts";
import {
  cardNumberValid,
  ibanValid,
  ipv4Uninformative,
  ipv6Valid,
  luhnValid,
  parseIpv4,
  secretLike,
  ssnValid,
} from "./pii_validators.ts";

Deno.test("luhnValid accepts published test card numbers and rejects a changed digit", () => {
  for (const n of ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "79927398713"]) {
    assert(luhnValid(n), n);
    const changed = n.slice(0, -1) + String((Number(n.at(-1)) + 1) % 10);
    assert(!luhnValid(changed), changed);
  }
  assert(!luhnValid(""));
  assert(!luhnValid("41x1"));
});

Deno.test("luhnValid catches every single-digit error", () => {
  fc.assert(
    fc.property(fc.stringMatching(/^\d{11,18}$/), fc.nat(), fc.integer({ min: 1, max: 9 }), (body, at, delta) => {
      // Completed with the one check digit that makes it valid.
      const digits = [..."0123456789"].map((d) => body + d).find(luhnValid)!;
      assert(digits !== undefined);
      const i = at % digits.length;
      const changed = digits.slice(0, i) + String((Number(digits[i]) + delta) % 10) + digits.slice(i + 1);
      assert(!luhnValid(changed), `${digits} → ${changed}`);
    }),
  );
});

Deno.test("cardNumberValid needs a known issuer range and its length", () => {
  assert(cardNumberValid("4111111111111111")); // Visa 16
  assert(cardNumberValid("378282246310005")); // Amex 15
  assert(!cardNumberValid("4111111111111")); // Luhn-invalid 13-digit Visa
  assert(!cardNumberValid("3782822463100050")); // Amex prefix, 16 digits
  assert(!cardNumberValid("1234567812345670")); // Luhn-valid, no issuer starts with 1
  assert(!cardNumberValid("0000000000000000"));
});

Deno.test("ibanValid checks country, length and mod-97", () => {
  for (
    const iban of ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606", "NO9386011117947"]
  ) {
    assert(ibanValid(iban), iban);
  }
  assert(!ibanValid("DE89370400440532013001")); // checksum
  assert(!ibanValid("DE8937040044053201300")); // length
  assert(!ibanValid("XX89370400440532013000")); // country
  assert(!ibanValid("de89370400440532013000")); // callers upper-case first
});

Deno.test("ssnValid applies the SSA issuing rules", () => {
  assert(ssnValid("536", "22", "8190"));
  assert(!ssnValid("000", "22", "8190"));
  assert(!ssnValid("666", "22", "8190"));
  assert(!ssnValid("901", "22", "8190"));
  assert(!ssnValid("536", "00", "8190"));
  assert(!ssnValid("536", "22", "0000"));
  assert(!ssnValid("078", "05", "1120")); // the Woolworth wallet card number
});

Deno.test("parseIpv4 parses dotted quads without leading zeros", () => {
  assertEquals(parseIpv4("192.168.1.20"), [192, 168, 1, 20]);
  assertEquals(parseIpv4("256.1.1.1"), undefined);
  assertEquals(parseIpv4("01.1.1.1"), undefined);
  assertEquals(parseIpv4("1.1.1"), undefined);
});

Deno.test("ipv4Uninformative covers unspecified, loopback and netmasks only", () => {
  assert(ipv4Uninformative([0, 0, 0, 0]));
  assert(ipv4Uninformative([127, 0, 0, 1]));
  assert(ipv4Uninformative([255, 255, 255, 0]));
  assert(ipv4Uninformative([255, 255, 240, 0]));
  assert(!ipv4Uninformative([255, 0, 255, 0])); // not contiguous
  assert(!ipv4Uninformative([10, 0, 0, 1]));
});

Deno.test("ipv6Valid accepts RFC 4291 forms and rejects look-alikes", () => {
  for (
    const ok of [
      "2001:db8::1",
      "fe80::a00:27ff:fe4e:66a1",
      "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
      "::ffff:192.0.2.128",
    ]
  ) {
    assert(ipv6Valid(ok), ok);
  }
  for (const bad of ["::1", "::", "1::2::3", "12:30:45", "00:1A:2B:3C:4D:5E", "add::bad", "1:2:3:4:5:6:7:8:9"]) {
    assert(!ipv6Valid(bad), bad);
  }
});

Deno.test("secretLike tells generated tokens from words and placeholders", () => {
  assert(secretLike("f83Kd92LmQp0xZ7vB4nT1wR6"));
  assert(!secretLike("process.env.OPENAI_API_KEY")); // no digit
  assert(!secretLike("xxxxxxxxxxxxxxxx1"));
  assert(!secretLike("1234567890123456")); // no letter
});

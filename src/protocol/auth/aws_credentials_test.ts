import fc from "fast-check";
import { assert, assertEquals } from "../../../test/support/assert.ts";
import { AwsCredentialsError, parseAwsCredentialsFile } from "./aws_credentials.ts";

const FILE = [
  "\uFEFF# AWS credentials",
  "[default]",
  "aws_access_key_id = AKIADEFAULT",
  "aws_secret_access_key=default/secret+key",
  "",
  "; temporary credentials",
  "[  ci  ]",
  "AWS_ACCESS_KEY_ID = ASIACI",
  "aws_secret_access_key = ci-secret",
  "aws_session_token = ci-token==",
  "region = eu-west-1",
  "[legacy]",
  "aws_access_key_id = AKIALEGACY",
  "aws_secret_access_key = legacy-secret",
  "aws_security_token = legacy-token",
].join("\r\n");

Deno.test("parseAwsCredentialsFile reads the default profile", () => {
  assertEquals(parseAwsCredentialsFile(FILE), { accessKeyId: "AKIADEFAULT", secretAccessKey: "default/secret+key" });
});

Deno.test("parseAwsCredentialsFile reads a named profile with its session token", () => {
  assertEquals(parseAwsCredentialsFile(FILE, "ci"), {
    accessKeyId: "ASIACI",
    secretAccessKey: "ci-secret",
    sessionToken: "ci-token==",
  });
  assertEquals(parseAwsCredentialsFile(FILE, "legacy").sessionToken, "legacy-token");
});

function errorOf(f: () => unknown): AwsCredentialsError {
  try {
    f();
  } catch (e) {
    if (e instanceof AwsCredentialsError) return e;
    throw e;
  }
  throw new Error("expected an AwsCredentialsError");
}

Deno.test("parseAwsCredentialsFile names what is missing in sentence case", () => {
  assertEquals(
    errorOf(() => parseAwsCredentialsFile(FILE, "prod")).message,
    "AWS credentials file has no [prod] profile",
  );
  assertEquals(
    errorOf(() => parseAwsCredentialsFile("[default]\naws_access_key_id = AKIA\n")).message,
    "AWS credentials profile [default] has no aws_secret_access_key",
  );
  assertEquals(
    errorOf(() => parseAwsCredentialsFile("aws_access_key_id = AKIA\n")).message,
    "AWS credentials file line 1 sets a key before any [profile] header",
  );
  assertEquals(errorOf(() => parseAwsCredentialsFile("[default]\n[x")).name, "AwsCredentialsError");
});

Deno.test("parseAwsCredentialsFile never puts a value into an error message (property)", () => {
  const secret = fc.stringMatching(/^[A-Za-z0-9+/]{12,40}$/);
  fc.assert(fc.property(secret, fc.constantFrom(0, 1, 2, 3), (value, shape) => {
    const files = [
      `[default]\naws_secret_access_key = ${value}\n`,
      `[default]\n${value}\n`,
      `aws_secret_access_key = ${value}\n`,
      `[default]\naws_access_key_id = ${value}\n[${value}\n`,
    ];
    const e = errorOf(() => parseAwsCredentialsFile(files[shape]!));
    assert(!e.message.includes(value), e.message);
  }));
});

import { assertEquals } from "../../../test/support/assert.ts";
import { startFakeBedrock } from "../../../test/support/fake_bedrock.ts";
import { regionFromHost, signAwsRequest } from "./aws_sigv4.ts";

// The worked example "GET Object" of AWS's Signature Version 4 documentation (Amazon S3 API reference,
// sig-v4-header-based-auth): same key pair, date, request and expected signature.
Deno.test("signAwsRequest reproduces the signature of AWS's documented SigV4 example", async () => {
  const headers = await signAwsRequest({
    method: "GET",
    host: "examplebucket.s3.amazonaws.com",
    path: "/test.txt",
    headers: { Range: "bytes=0-9" },
    body: "",
    region: "us-east-1",
    service: "s3",
    credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
    now: new Date("2013-05-24T00:00:00Z"),
  });
  assertEquals(headers, {
    authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
      "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    "x-amz-date": "20130524T000000Z",
    "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  });
});

const bedrockInput = {
  method: "POST",
  host: "bedrock-runtime.eu-west-3.amazonaws.com",
  path: "/model/amazon.nova-lite-v1%3A0/converse",
  headers: { "content-type": "application/json" },
  body: '{"messages":[]}',
  service: "bedrock",
  credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret", sessionToken: "token-1" },
  now: new Date("2026-01-01T00:00:00Z"),
};

Deno.test("signAwsRequest takes the region from a Bedrock host and signs the session token", async () => {
  const headers = await signAwsRequest(bedrockInput);
  const auth = headers["authorization"] ?? "";
  assertEquals(auth.split(", ").slice(0, 2), [
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-3/bedrock/aws4_request",
    "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token",
  ]);
  assertEquals(headers["x-amz-security-token"], "token-1");
  assertEquals(headers["x-amz-date"], "20260101T000000Z");
});

Deno.test("signAwsRequest signs the same request the same way and another body differently", async () => {
  const a = await signAwsRequest(bedrockInput);
  assertEquals(await signAwsRequest(bedrockInput), a);
  const b = await signAwsRequest({ ...bedrockInput, body: new TextEncoder().encode('{"messages":[1]}') });
  assertEquals(a["authorization"] === b["authorization"], false);
});

Deno.test("signAwsRequest refuses a host without a region when none is given", async () => {
  let message = "";
  try {
    await signAwsRequest({ ...bedrockInput, host: "bedrock.internal:8443" });
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(
    message,
    'Cannot sign request for host "bedrock.internal:8443": no region given and none in the host name',
  );
});

Deno.test("regionFromHost reads regional, FIPS and China endpoints", () => {
  assertEquals(regionFromHost("bedrock-runtime.us-east-1.amazonaws.com"), "us-east-1");
  assertEquals(regionFromHost("bedrock-runtime-fips.us-gov-west-1.amazonaws.com:443"), "us-gov-west-1");
  assertEquals(regionFromHost("bedrock-runtime.cn-north-1.amazonaws.com.cn"), "cn-north-1");
  assertEquals(regionFromHost("127.0.0.1:8080"), undefined);
});

Deno.test("A request signed by signAwsRequest with temporary credentials passes the fake Bedrock", async () => {
  const credentials = { accessKeyId: "ASIATEMP", secretAccessKey: "temp-secret", sessionToken: "session/token==" };
  await using fake = await startFakeBedrock({
    credentials,
    region: "eu-west-3",
    handlers: { invoke: () => ({ embedding: [0], inputTextTokenCount: 1 }) },
  });
  const path = "/model/amazon.titan-embed-text-v2%3A0/invoke";
  const body = '{"inputText":"x"}';
  const send = async (token: string, sentBody = body) => {
    const signed = await signAwsRequest({
      method: "POST",
      host: fake.host,
      path,
      headers: { "content-type": "application/json" },
      body,
      region: "eu-west-3",
      service: "bedrock",
      credentials: { ...credentials, sessionToken: token },
    });
    const res = await fetch(`${fake.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...signed },
      body: sentBody,
    });
    await res.body?.cancel();
    return res.status;
  };
  assertEquals(await send(credentials.sessionToken), 200);
  assertEquals(await send("another-token"), 403);
  assertEquals(await send(credentials.sessionToken, '{"inputText":"changed after signing"}'), 403);
  assertEquals(fake.rejected, ["UnrecognizedClientException", "InvalidSignatureException"]);
  assertEquals(fake.calls.map((c) => c.modelId), ["amazon.titan-embed-text-v2:0"]);
});

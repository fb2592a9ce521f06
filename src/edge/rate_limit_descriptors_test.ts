import { assertEquals } from "../../test/support/assert.ts";
import type { DescriptorAction, RateLimitEntry } from "./config.ts";
import type { DynamicMetadata } from "./dynamic_metadata.ts";
import {
  buildDescriptors,
  decodeRlsRequest,
  type DescriptorContext,
  encodeRlsRequest,
  type RlsDescriptor,
  type RlsRequest,
} from "./rate_limit_descriptors.ts";
import { RateLimitRequest } from "../protocol/gen/envoy/service/ratelimit/v3/rls.ts";

function ctx(headers: Record<string, string> = {}, metadata: DynamicMetadata = new Map()): DescriptorContext {
  return { headers: new Map(Object.entries(headers)), metadata };
}

function entry(actions: DescriptorAction[], more: Partial<RateLimitEntry> = {}): RateLimitEntry {
  return { actions, applyOnStreamDone: false, ...more };
}

const model: DescriptorAction = {
  kind: "requestHeaders",
  headerName: "x-ai-model",
  descriptorKey: "model",
  skipIfAbsent: false,
};
const tenant: DescriptorAction = {
  kind: "requestHeaders",
  headerName: "X-Tenant",
  descriptorKey: "tenant",
  skipIfAbsent: true,
};
const generic: DescriptorAction = { kind: "genericKey", descriptorKey: "route", descriptorValue: "chat" };
const isChat: DescriptorAction = {
  kind: "headerValueMatch",
  descriptorKey: "kind",
  descriptorValue: "chat",
  expectMatch: true,
  headers: [{ name: ":path", exact: "/v1/chat/completions" }, { name: ":method", exact: "POST" }],
};
const user: DescriptorAction = { kind: "metadata", descriptorKey: "user", namespace: "io.tollgate", key: "user" };
const userOrAnon: DescriptorAction = { ...user, defaultValue: "anonymous" };

const chatHeaders = { ":path": "/v1/chat/completions", ":method": "POST", "x-ai-model": "gpt-4o", "x-tenant": "acme" };
const md = (values: Record<string, unknown>): DynamicMetadata => new Map([["io.tollgate", values]]);

const actionCases: Array<{
  name: string;
  actions: DescriptorAction[];
  ctx: DescriptorContext;
  want: RlsDescriptor[];
}> = [
  {
    name: "request_headers appends (descriptor_key, header value)",
    actions: [model],
    ctx: ctx(chatHeaders),
    want: [{ entries: [{ key: "model", value: "gpt-4o" }] }],
  },
  {
    name: "request_headers reads pseudo-headers and matches names case-insensitively",
    actions: [{ ...model, headerName: ":PATH", descriptorKey: "path" }, { ...tenant, skipIfAbsent: false }],
    ctx: ctx(chatHeaders),
    want: [{ entries: [{ key: "path", value: "/v1/chat/completions" }, { key: "tenant", value: "acme" }] }],
  },
  {
    name: "request_headers without the header skips the whole descriptor",
    actions: [generic, model],
    ctx: ctx({}),
    want: [],
  },
  {
    name: "request_headers with skip_if_absent omits only its own entry",
    actions: [generic, tenant],
    ctx: ctx({}),
    want: [{ entries: [{ key: "route", value: "chat" }] }],
  },
  {
    name: "a descriptor left with no entry by skip_if_absent is not sent",
    actions: [tenant],
    ctx: ctx({}),
    want: [],
  },
  {
    name: "generic_key appends its fixed pair",
    actions: [generic],
    ctx: ctx(),
    want: [{ entries: [{ key: "route", value: "chat" }] }],
  },
  {
    name: "generic_key without a key uses generic_key",
    actions: [{ ...generic, descriptorKey: "" }],
    ctx: ctx(),
    want: [{ entries: [{ key: "generic_key", value: "chat" }] }],
  },
  {
    name: "header_value_match appends its pair when every header matches",
    actions: [isChat],
    ctx: ctx(chatHeaders),
    want: [{ entries: [{ key: "kind", value: "chat" }] }],
  },
  {
    name: "header_value_match skips the descriptor when one header differs",
    actions: [generic, isChat],
    ctx: ctx({ ...chatHeaders, ":method": "GET" }),
    want: [],
  },
  {
    name: "header_value_match skips the descriptor when a header is absent",
    actions: [isChat],
    ctx: ctx({ ":path": "/v1/chat/completions" }),
    want: [],
  },
  {
    name: "header_value_match with expect_match false appends when the headers do not match",
    actions: [{ ...isChat, expectMatch: false, descriptorKey: "" }],
    ctx: ctx({ ":path": "/v1/embeddings", ":method": "POST" }),
    want: [{ entries: [{ key: "header_match", value: "chat" }] }],
  },
  {
    name: "header_value_match with expect_match false skips the descriptor when they match",
    actions: [{ ...isChat, expectMatch: false }],
    ctx: ctx(chatHeaders),
    want: [],
  },
  {
    name: "metadata appends the string value from dynamic metadata",
    actions: [user],
    ctx: ctx({}, md({ user: "alice" })),
    want: [{ entries: [{ key: "user", value: "alice" }] }],
  },
  {
    name: "metadata without the value or a default skips the descriptor",
    actions: [generic, user],
    ctx: ctx({}, new Map()),
    want: [],
  },
  {
    name: "metadata falls back to default_value when the value is absent",
    actions: [userOrAnon],
    ctx: ctx({}, md({})),
    want: [{ entries: [{ key: "user", value: "anonymous" }] }],
  },
  {
    name: "metadata counts a non-string value as absent",
    actions: [user],
    ctx: ctx({}, md({ user: 42 })),
    want: [],
  },
  {
    name: "metadata counts an empty string as absent and uses the default",
    actions: [userOrAnon],
    ctx: ctx({}, md({ user: "" })),
    want: [{ entries: [{ key: "user", value: "anonymous" }] }],
  },
  {
    name: "actions compose in configuration order",
    actions: [isChat, model, user],
    ctx: ctx(chatHeaders, md({ user: "alice" })),
    want: [{
      entries: [{ key: "kind", value: "chat" }, { key: "model", value: "gpt-4o" }, { key: "user", value: "alice" }],
    }],
  },
];

for (const c of actionCases) {
  Deno.test(`buildDescriptors: ${c.name}`, () => {
    assertEquals(buildDescriptors([entry(c.actions)], c.ctx, false), c.want);
  });
}

Deno.test("buildDescriptors keeps one descriptor per entry and drops only the entries that cannot be built", () => {
  const got = buildDescriptors([entry([generic]), entry([model]), entry([isChat])], ctx(chatHeaders), false);
  assertEquals(got, [
    { entries: [{ key: "route", value: "chat" }] },
    { entries: [{ key: "model", value: "gpt-4o" }] },
    { entries: [{ key: "kind", value: "chat" }] },
  ]);
  assertEquals(buildDescriptors([entry([generic]), entry([model])], ctx({}), false), [
    { entries: [{ key: "route", value: "chat" }] },
  ]);
});

Deno.test("buildDescriptors selects request-time or stream-done entries by applyOnStreamDone", () => {
  const entries = [
    entry([generic]),
    entry([model], { applyOnStreamDone: true, hitsAddend: { number: 1 } }),
    entry([user], { applyOnStreamDone: true }),
  ];
  const c = ctx(chatHeaders, md({ user: "alice" }));
  assertEquals(buildDescriptors(entries, c, false), [{ entries: [{ key: "route", value: "chat" }] }]);
  assertEquals(buildDescriptors(entries, c, true), [
    { entries: [{ key: "model", value: "gpt-4o" }], hitsAddend: 1 },
    { entries: [{ key: "user", value: "alice" }] },
  ]);
  assertEquals(buildDescriptors([], c, false), []);
});

const tokens = { metadata: { namespace: "io.tollgate", key: "tokens" } } as const;

const hitsCases: Array<
  { name: string; hitsAddend: NonNullable<RateLimitEntry["hitsAddend"]>; metadata: unknown; want?: number }
> = [
  { name: "a fixed number", hitsAddend: { number: 5 }, metadata: undefined, want: 5 },
  { name: "a fixed zero", hitsAddend: { number: 0 }, metadata: undefined, want: 0 },
  { name: "a numeric metadata value", hitsAddend: tokens, metadata: 1234, want: 1234 },
  { name: "a metadata string of digits", hitsAddend: tokens, metadata: "1234", want: 1234 },
  { name: "the largest allowed metadata value", hitsAddend: tokens, metadata: 1_000_000_000, want: 1_000_000_000 },
  { name: "missing from metadata", hitsAddend: tokens, metadata: undefined },
  { name: "a negative metadata value", hitsAddend: tokens, metadata: -1 },
  { name: "a fractional metadata value", hitsAddend: tokens, metadata: 1.5 },
  { name: "a non-numeric metadata string", hitsAddend: tokens, metadata: "12k" },
  { name: "a metadata value above 1e9", hitsAddend: tokens, metadata: 1_000_000_001 },
  { name: "a boolean metadata value", hitsAddend: tokens, metadata: true },
];

for (const c of hitsCases) {
  const name = c.want === undefined
    ? `buildDescriptors drops the descriptor when its hits addend is ${c.name}`
    : `buildDescriptors sets the descriptor's hits_addend from ${c.name}`;
  Deno.test(name, () => {
    const metadata: DynamicMetadata = new Map([[
      "io.tollgate",
      c.metadata === undefined ? {} : { tokens: c.metadata },
    ]]);
    const entries = [entry([generic], { applyOnStreamDone: true, hitsAddend: c.hitsAddend })];
    const want = c.want === undefined ? [] : [{ entries: [{ key: "route", value: "chat" }], hitsAddend: c.want }];
    assertEquals(buildDescriptors(entries, ctx({}, metadata), true), want);
  });
}

Deno.test("an RLS request round-trips through the wire form with per-descriptor hits_addend", () => {
  const request: RlsRequest = {
    domain: "tollgate",
    descriptors: [
      { entries: [{ key: "route", value: "chat" }] },
      { entries: [{ key: "user", value: "alice" }], hitsAddend: 1234 },
      { entries: [{ key: "user", value: "bob" }], hitsAddend: 0 },
    ],
    hitsAddend: 0,
  };
  const bytes = encodeRlsRequest(request);
  assertEquals(decodeRlsRequest(bytes), request);
  // The generated codec reads the same bytes and simply does not know field 3 of a descriptor.
  const plain = RateLimitRequest.decode(bytes);
  assertEquals(plain.domain, "tollgate");
  assertEquals(plain.descriptors.map((d) => d.entries), request.descriptors.map((d) => d.entries));
});

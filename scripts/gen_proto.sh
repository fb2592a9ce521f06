#!/usr/bin/env bash
# Generates src/protocol/gen/ (or the directory given as $1) with ts-proto through buf.
# Usage: scripts/gen_proto.sh [OUT_DIR]
#        scripts/gen_proto.sh --stage-only STAGE_DIR
# --stage-only copies the patched protos into STAGE_DIR (an absolute path; its buf modules are envoy-api, googleapis,
# xds and protoc-gen-validate) and stops there: test/support/envoy_protos.ts builds its descriptor image from it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
deps=node_modules/@grpc/grpc-js-xds/deps
stage=build/proto
stage_only=false
if [[ "${1:-}" == "--stage-only" ]]; then
  stage=${2:?"--stage-only needs a directory"}
  stage_only=true
fi
out=${1:-src/protocol/gen}

rm -rf "$stage"
mkdir -p "$stage/protoc-gen-validate"
cp -R "$deps/envoy-api" "$deps/googleapis" "$deps/xds" "$stage/"
cp -R "$deps/protoc-gen-validate/validate" "$stage/protoc-gen-validate/"
# The validate.proto shipped in @grpc/grpc-js-xds predates StringRules.ignore_empty (field 26 upstream), which
# the Envoy protos use in 17 annotations. Validation options never change the wire format of Envoy's messages, so
# declaring the missing option field is enough for buf to resolve them.
sed -i -E 's/^message StringRules \{\r?$/message StringRules {\n    optional bool ignore_empty = 26;/' \
  "$stage/protoc-gen-validate/validate/validate.proto"

# The Envoy protos in @grpc/grpc-js-xds also predate two rate-limit changes of Envoy 1.33 that the bootstrap written
# by `tollgate render envoy` (src/edge/render_envoy.ts) relies on. Declared here exactly as upstream declares them
# (name, number, type; validation options left out for the reason above), and only while missing:
# - envoy.config.route.v3.RateLimit gained `HitsAddend hits_addend = 5`, with the nested message
#   `HitsAddend { google.protobuf.UInt64Value number = 1; string format = 2; }`, and `bool apply_on_stream_done = 6`
#   (api/envoy/config/route/v3/route_components.proto; envoyproxy/envoy#37548 and #37567).
# - envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute.rate_limits (= 3) changed its element type from the
#   never-implemented RateLimitConfig to envoy.config.route.v3.RateLimit (envoyproxy/envoy#37684). That per-route
#   list is the only place Envoy 1.37 honours hits_addend (route-level rate_limits ignore it: envoyproxy/envoy#45611).
route_proto=$stage/envoy-api/envoy/config/route/v3/route_components.proto
if ! grep -q 'apply_on_stream_done = 6;' "$route_proto"; then
  sed -i -E 's/^message RateLimit \{\r?$/message RateLimit {\n  message HitsAddend {\n    google.protobuf.UInt64Value number = 1;\n    string format = 2;\n  }\n  HitsAddend hits_addend = 5;\n  bool apply_on_stream_done = 6;/' \
    "$route_proto"
fi
ratelimit_proto=$stage/envoy-api/envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto
sed -i -E 's/^  repeated RateLimitConfig rate_limits = 3;\r?$/  repeated config.route.v3.RateLimit rate_limits = 3;/' \
  "$ratelimit_proto"
if ! grep -q 'apply_on_stream_done = 6;' "$route_proto" ||
  ! grep -q '^  repeated config.route.v3.RateLimit rate_limits = 3;' "$ratelimit_proto"; then
  echo "gen_proto.sh: the Envoy 1.33 rate-limit patch no longer applies; check the staged protos" >&2
  exit 1
fi

if [[ "$stage_only" == true ]]; then
  exit 0
fi

rm -rf "$out"
mkdir -p "$out"
tmp=$(mktemp -d)
npx --no-install buf generate --output "$tmp"
cp -R "$tmp/src/protocol/gen/." "$out/"
rm -rf "$tmp"

#!/usr/bin/env bash
# Generates src/protocol/gen/ (or the directory given as $1) with ts-proto through buf.
# Usage: scripts/gen_proto.sh [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-src/protocol/gen}
deps=node_modules/@grpc/grpc-js-xds/deps
stage=build/proto

rm -rf "$stage"
mkdir -p "$stage/protoc-gen-validate"
cp -R "$deps/envoy-api" "$deps/googleapis" "$deps/xds" "$stage/"
cp -R "$deps/protoc-gen-validate/validate" "$stage/protoc-gen-validate/"
# The validate.proto shipped in @grpc/grpc-js-xds predates StringRules.ignore_empty (field 26 upstream), which
# the Envoy protos use in 17 annotations. Validation options never change the wire format of Envoy's messages, so
# declaring the missing option field is enough for buf to resolve them.
sed -i -E 's/^message StringRules \{\r?$/message StringRules {\n    optional bool ignore_empty = 26;/' \
  "$stage/protoc-gen-validate/validate/validate.proto"

rm -rf "$out"
mkdir -p "$out"
tmp=$(mktemp -d)
npx --no-install buf generate --output "$tmp"
cp -R "$tmp/src/protocol/gen/." "$out/"
rm -rf "$tmp"

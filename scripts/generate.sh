#!/bin/sh
# `npm run generate`: installs the pinned code generators once (into the test cache, see
# test/support/codegen-tools.ts), then runs buf generate with them first on PATH.
set -e
cd "$(dirname "$0")/.."
tools_path="$(node --import tsx test/support/codegen-tools.ts --print-path)"
export PATH="$tools_path"
exec buf generate "$@"

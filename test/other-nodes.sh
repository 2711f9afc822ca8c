#!/usr/bin/env bash
# The unit tests again on the other Node.js lines users run (default: 22 and 24; set
# NODE_MAJORS to choose). Official binaries from the npm registry (the node-linux-<arch>
# packages), kept under .cache/node-versions. CI runs this after `npm test`, which runs
# everything on the machine's own Node. The runtime tests stay on that one only.
# With REPORT=PREFIX, each run also writes PREFIX-node<major>.json (vitest's JSON report).
set -euo pipefail
cd "$(dirname "$0")/.."
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "other-nodes: no Node.js package for $(uname -m)" >&2; exit 1 ;;
esac
majors=${NODE_MAJORS:-22 24}
dir=.cache/node-versions
specs=()
for major in $majors; do specs+=("node$major@npm:node-linux-$arch@$major"); done
missing=0
for major in $majors; do [ -x "$dir/node_modules/node$major/bin/node" ] || missing=1; done
if [ "$missing" = 1 ]; then
  mkdir -p "$dir"
  # One install for all of them: a later one without the others would prune them.
  npm install --prefix "$dir" --no-save --no-audit --no-fund --no-package-lock "${specs[@]}"
fi
status=0
for major in $majors; do
  bin="$(pwd)/$dir/node_modules/node$major/bin"
  echo "== unit tests on Node.js $("$bin/node" --version)"
  # On PATH too: tests that start `node` by name get the same one.
  report=()
  [ -n "${REPORT:-}" ] && report=(--reporter=default --reporter=json "--outputFile.json=$REPORT-node$major.json")
  PATH="$bin:$PATH" "$bin/node" node_modules/vitest/vitest.mjs run --project unit "${report[@]}" || status=1
done
exit "$status"

#!/usr/bin/env bash
# Rebuild the dashboard's vendored libraries from the npm registry (pinned versions).
# The files are committed so the dashboard works offline; run this only to upgrade them.
set -euo pipefail
cd "$(dirname "$0")/.."
ALPINE=3.17.4
CHARTJS=4.6.1
out=src/gridtokenx/web/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "alpinejs@$ALPINE" "chart.js@$CHARTJS" >/dev/null)
for pkg in "alpinejs-$ALPINE" "chart.js-$CHARTJS"; do
  mkdir -p "$work/$pkg" && tar xzf "$work/$pkg.tgz" -C "$work/$pkg"
done
cp "$work/alpinejs-$ALPINE/package/dist/cdn.min.js" "$out/alpine-$ALPINE.min.js"
cp "$work/chart.js-$CHARTJS/package/dist/chart.umd.min.js" "$out/chart-$CHARTJS.umd.min.js"
cp "$work/chart.js-$CHARTJS/package/LICENSE.md" "$out/LICENSE.chartjs"
echo "vendored alpinejs $ALPINE and chart.js $CHARTJS into $out"

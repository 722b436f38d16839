#!/usr/bin/env bash
# Seeds a running osmium-chat with users and messages for the ghz load tests,
# and prints the variables the configs in this folder read:
#
#   eval "$(deploy/ghz/seed.sh)"            # the compose stack (Envoy on :8080)
#   eval "$(deploy/ghz/seed.sh --local)"    # the README's server (target/release/osmium-chat on
#                                           # :50051, embedded engines, development secret)
#   ghz --config deploy/ghz/get-chats.json "$OSMIUM_GHZ_HOST"
#
# Progress goes to stderr; stdout carries only `export NAME=value` lines (also
# written to $OSMIUM_GHZ_ENV_FILE). Needs grpcurl, and the osmium-chat binary
# to mint tokens (it signs them locally, no server involved).
#
# Settings (environment):
#   OSMIUM_GHZ_HOST      gRPC address to seed          (localhost:8080: Envoy of deploy/compose.yaml)
#   OSMIUM_CHAT_BIN      the token-minting command     (osmium-chat on PATH, else target/release or target/debug)
#                        may hold arguments, e.g.
#                        "docker compose -f deploy/compose.yaml run --rm -T --no-deps chat-1"
#   OSMIUM_JWT_SECRET    the server's signing secret   (the compose stack's local-only one)
#   OSMIUM_JWT_AUDIENCE  the server's audience         (osmium-chat)
#   OSMIUM_GRPCURL_FLAGS transport flags for grpcurl   (-plaintext; e.g. "-insecure" for TLS)
#   OSMIUM_GHZ_USER      the user the load runs as     (1001)
#   OSMIUM_GHZ_PEER      the user it chats with        (1002)
#   OSMIUM_SEED_MESSAGES messages sent each way        (20)
#   OSMIUM_TOKEN_TTL     token lifetime in seconds     (7200)
#   OSMIUM_GHZ_ENV_FILE  where the exports are saved   (${TMPDIR:-/tmp}/osmium-ghz.env)
set -euo pipefail

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    --local)
        # What README.md's "Try it" starts: explicit settings still win.
        : "${OSMIUM_GHZ_HOST:=localhost:50051}"
        : "${OSMIUM_JWT_SECRET:=osmium-chat-development-secret-for-loopback-only}"
        ;;
    "") ;;
    *)
        printf 'error: unknown argument %s (try --help)\n' "$1" >&2
        exit 2
        ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

host="${OSMIUM_GHZ_HOST:-localhost:8080}"
# The value deploy/compose.yaml gives both replicas; set the real one for a cluster.
export OSMIUM_JWT_SECRET="${OSMIUM_JWT_SECRET:-osmium-chat-local-only-secret-for-compose}"
export OSMIUM_JWT_AUDIENCE="${OSMIUM_JWT_AUDIENCE:-osmium-chat}"
read -r -a grpcurl_flags <<<"${OSMIUM_GRPCURL_FLAGS:--plaintext}"
load_user="${OSMIUM_GHZ_USER:-1001}"
peer_user="${OSMIUM_GHZ_PEER:-1002}"
messages="${OSMIUM_SEED_MESSAGES:-20}"
ttl="${OSMIUM_TOKEN_TTL:-7200}"
env_file="${OSMIUM_GHZ_ENV_FILE:-${TMPDIR:-/tmp}/osmium-ghz.env}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if [ -n "${OSMIUM_CHAT_BIN:-}" ]; then
    read -r -a chat_bin <<<"$OSMIUM_CHAT_BIN"
elif command -v osmium-chat >/dev/null; then
    chat_bin=(osmium-chat)
elif [ -x "$repo_root/target/release/osmium-chat" ]; then
    chat_bin=("$repo_root/target/release/osmium-chat")
elif [ -x "$repo_root/target/debug/osmium-chat" ]; then
    chat_bin=("$repo_root/target/debug/osmium-chat")
else
    die "no osmium-chat binary: build one (cargo build --release) or set OSMIUM_CHAT_BIN"
fi
command -v grpcurl >/dev/null || die "grpcurl is not on PATH"

# A token from the binary; DATABASE_URL is cleared so that a stray one in the
# caller's environment cannot make `token` demand a different secret.
mint() { env -u DATABASE_URL "${chat_bin[@]}" token --ttl "$ttl" "$@"; }

# One call; the reply JSON goes to stdout.
call() {
    local token="$1" method="$2" body="$3"
    grpcurl "${grpcurl_flags[@]}" -H "authorization: Bearer $token" -d "$body" "$host" "$method"
}

# The message id in a SentMessage reply (grpcurl prints messageId).
message_id() { sed -n 's/.*"message[_I]d": *"\{0,1\}\([0-9]*\)"\{0,1\}.*/\1/p' | head -n 1; }

log "seeding $host as user $load_user (peer $peer_user) with ${chat_bin[*]}"

log "health"
grpcurl "${grpcurl_flags[@]}" -d '{"service": "osmium.chat.v1.ChatService"}' \
    "$host" grpc.health.v1.Health/Check >&2

log "UpsertUsers with a service token"
service_token="$(mint --user 1 --service)"
call "$service_token" osmium.chat.v1.UserDirectory/UpsertUsers "$(
    printf '{"users": [{"id": "%s", "name": "Load Tester"}, {"id": "%s", "name": "Load Peer"}, {"id": "1003", "name": "Cy"}, {"id": "1004", "name": "Di"}]}' \
        "$load_user" "$peer_user"
)" >&2

user_token="$(mint --user "$load_user")"
peer_token="$(mint --user "$peer_user")"
to_peer="$(printf '{"user": {"user_id": "%s"}}' "$peer_user")"
to_user="$(printf '{"user": {"user_id": "%s"}}' "$load_user")"

log "sending $messages messages each way"
last_id=""
for i in $(seq 1 "$messages"); do
    call "$user_token" osmium.chat.v1.ChatService/SendMessage \
        "{\"chat_ref\": $to_peer, \"message\": \"seed $i from $load_user\"}" >/dev/null
    # The peer's messages leave the load user something unread to mark read.
    last_id="$(call "$peer_token" osmium.chat.v1.ChatService/SendMessage \
        "{\"chat_ref\": $to_user, \"message\": \"seed $i from $peer_user\"}" | message_id)"
done
[ -n "$last_id" ] || die "SendMessage returned no message id"
call "$user_token" osmium.chat.v1.ChatService/SendMessage \
    '{"chat_ref": {"self": {}}, "message": "saved message seed"}' >/dev/null

log "checking GetChats as the load user"
call "$user_token" osmium.chat.v1.ChatService/GetChats '{}' >/dev/null

exports="$(cat <<EOF
export OSMIUM_GHZ_HOST='$host'
export OSMIUM_GHZ_TOKEN='$user_token'
export OSMIUM_GHZ_PEER='$peer_user'
export OSMIUM_GHZ_MESSAGE_ID='$last_id'
EOF
)"
(umask 077 && printf '%s\n' "$exports" >"$env_file")
log "saved to $env_file (tokens expire in ${ttl}s); run e.g.: ghz --config deploy/ghz/get-chats.json \"\$OSMIUM_GHZ_HOST\""
printf '%s\n' "$exports"

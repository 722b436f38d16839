"""Checks of the deployment artefacts that need a library rather than a CLI.

Run by scripts/check-deploy.sh inside its tool venv; each subcommand prints
what it checked and exits non-zero on the first class of failure:

  chart OUT_DIR   helm lint (strict) and render the chart with the Helm SDK,
                  for the default values and for ci/*-values.yaml; writes
                  <case>.yaml (core kinds), <case>.crds.yaml and .crds.json
                  (CRD kinds) per case, and checks that bad settings are
                  refused
  compose         cross-references of deploy/compose.yaml and envoy.yaml
  envoy           deploy/envoy.yaml against Envoy's v3 API (xds-protos)
  ghz             deploy/ghz/*.json against ghz's configuration keys
"""

from __future__ import annotations

import glob
import importlib
import json
import pkgutil
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "osmium-chat"
RELEASE = "osmium-chat"
NAMESPACE = "osmium"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion).
MIN_KUBE = "v1.30.0"
# Kinds that come from CRDs: kubernetes-validate has no schema for them.
CRD_API_GROUPS = ("monitoring.coreos.com/",)


def fail(message: str) -> None:
    print(f"FAIL {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- chart


def lint_chart(helm, values: dict | None, label: str) -> None:
    for kube in (MIN_KUBE, None):
        report = helm.lint(
            str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=kube
        )
        # Severity 1 is INFO (e.g. "icon is recommended"); strict mode turns
        # warnings (2) into errors, which land in "errors".
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        if report["errors"] or problems:
            fail(f"helm lint {label}: {json.dumps(report, indent=2)}")
        infos = "; ".join(m["error"] for m in report["messages"])
        print(f"    ok helm lint --strict {label} (kube {kube or 'default'})" + (f" [info: {infos}]" if infos else ""))


def render(chart, values: dict | None, *, upgrade: bool = False) -> dict[str, str]:
    return chart.render(
        values=values,
        name=RELEASE,
        namespace=NAMESPACE,
        is_install=not upgrade,
        is_upgrade=upgrade,
    )


def write_manifests(rendered: dict[str, str], out: Path, case: str) -> list[dict]:
    """Writes the rendered templates as `helm template` would print them,
    core kinds and CRD kinds apart, and returns every object."""
    core, crds, docs, crd_docs = [], [], [], []
    for source in sorted(rendered):
        body = rendered[source].strip()
        if not source.endswith((".yaml", ".yml")) or not body:
            continue  # NOTES.txt, and templates switched off
        objects = [d for d in yaml.safe_load_all(body) if d]
        docs += objects
        chunk = f"---\n# Source: {source}\n{body}\n"
        if any(d["apiVersion"].startswith(CRD_API_GROUPS) for d in objects):
            crds.append(chunk)
            crd_docs += objects
        else:
            core.append(chunk)
    (out / f"{case}.yaml").write_text("".join(core))
    (out / f"{case}.crds.yaml").write_text("".join(crds))
    (out / f"{case}.crds.json").write_text(json.dumps(crd_docs, indent=1))
    return docs


def check_invariants(docs: list[dict], case: str) -> None:
    """What the chart promises, beyond what the schemas can say."""
    kinds = {d["kind"] for d in docs}
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc = container["securityContext"]
    if not (pod["securityContext"].get("runAsNonRoot") and sc.get("readOnlyRootFilesystem")
            and sc.get("capabilities", {}).get("drop") == ["ALL"]
            and pod["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault"):
        fail(f"{case}: the Deployment lost its restricted security context")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if "grpc" not in container.get(probe, {}):
            fail(f"{case}: {probe} is not a native gRPC probe")
    env = {e["name"]: e for e in container.get("env", [])}
    for name in ("DATABASE_URL", "REDIS_URL", "OSMIUM_JWT_SECRET"):
        if name in env and "secretKeyRef" not in env[name].get("valueFrom", {}):
            fail(f"{case}: {name} must come from a Secret")
    if any(d["kind"] == "Secret" for d in docs):
        fail(f"{case}: the chart must not create Secrets")
    services = [d for d in docs if d["kind"] == "Service"]
    if not any(s["spec"].get("clusterIP") == "None" for s in services):
        fail(f"{case}: no headless Service")
    job = next((d for d in docs if d["kind"] == "Job"), None)
    if job is not None:
        hooks = job["metadata"]["annotations"].get("helm.sh/hook", "")
        if set(hooks.split(",")) != {"pre-install", "pre-upgrade"}:
            fail(f"{case}: the migration Job is not a pre-install,pre-upgrade hook")
        if job["spec"]["template"]["spec"]["containers"][0]["args"] != ["migrate"]:
            fail(f"{case}: the migration Job does not run `migrate`")
        # Migrations connect as the replicas do, TLS included.
        job_env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        for name in ("PGSSLMODE", "PGSSLROOTCERT"):
            if env.get(name) != job_env.get(name):
                fail(f"{case}: the migration Job's {name} differs from the replicas'")
    print(f"    ok invariants {case}: {', '.join(sorted(kinds))}")


# Settings the chart must refuse, and a phrase its error must contain.
REFUSED = [
    ({"replicaCount": "three"}, "want integer"),
    ({"unknownKey": True}, "additional properties"),
    ({"secrets": {"databaseUrl": {"name": "", "key": "DATABASE_URL"}}}, "several replicas need Postgres"),
    ({"secrets": {"redisUrl": {"name": "", "key": "REDIS_URL"}}}, "several replicas need Redis"),
    ({"secrets": {"jwtSecret": {"name": "", "key": "OSMIUM_JWT_SECRET"}}}, "a token key is required"),
    # Even the in-memory engine: the pods listen off loopback.
    ({"replicaCount": 1, "secrets": {"databaseUrl": {"name": ""}, "redisUrl": {"name": ""},
                                     "jwtSecret": {"name": ""}}}, "a token key is required"),
    ({"tls": {"enabled": True}}, "tls.enabled needs tls.secretName"),
    ({"backendTls": {"redis": {"ca": {"secret": "a", "configMap": "b", "key": "ca.crt"}}}}, "not both"),
    ({"backendTls": {"postgres": {"sslmode": "allow"}}}, "value must be one of"),
    ({"terminationGracePeriodSeconds": 20}, "must exceed"),
    ({"podDisruptionBudget": {"minAvailable": 2}}, "not both"),
    # 10 autoscaled pods x 16 connections: past Postgres' default of 100.
    ({"autoscaling": {"enabled": True}}, "above database.maxConnections"),
    ({"replicaCount": 6, "config": {"dbPoolSize": 16}}, "above database.maxConnections"),
]

# Metrics the alerts may use that other exporters provide.
EXTERNAL_METRICS = {"up", "kube_pod_container_status_restarts_total"}
PROMQL_METRIC = re.compile(r"\b(osmium_[a-z0-9_]+)")
# Dashboard variables, replaced by sample values before parsing.
DASHBOARD_VARIABLES = {"$__rate_interval": "1m", "$namespace": "osmium", "$job": "osmium-chat"}


def exported_metrics() -> set[str]:
    """The metric families src/telemetry/metrics.rs registers, as scraped
    (counters end in _total, the latency histogram in _seconds)."""
    source = (ROOT / "src" / "telemetry" / "metrics.rs").read_text()
    names = set()
    for call in re.finditer(r'registry\.register(?:_with_unit)?\(\s*"(\w+)"(.*?)\);', source, re.S):
        names.add("osmium_" + call.group(1) + ("_seconds" if "Unit::Seconds" in call.group(2) else ""))
    if len(names) < 8:
        fail(f"src/telemetry/metrics.rs: found only {sorted(names)}; has the registration changed?")
    return names


def metric_known(name: str, exported: set[str]) -> bool:
    for suffix in ("", "_total", "_bucket", "_sum", "_count"):
        if suffix and not name.endswith(suffix):
            continue
        if name[: len(name) - len(suffix)] in exported:
            return True
    return False


def check_promql(expr: str, where: str, exported: set[str]) -> None:
    import promql_parser

    try:
        promql_parser.parse(expr)
    except Exception as error:  # the parser raises plain exceptions
        fail(f"{where}: not valid PromQL ({error}): {expr}")
    for name in PROMQL_METRIC.findall(expr):
        if not metric_known(name, exported):
            fail(f"{where}: {name} is not a metric the service exports")


def check_observability(docs: list[dict], case: str) -> None:
    """The dashboard ConfigMap and the PrometheusRule, when rendered: JSON
    and PromQL that parse, and only metrics the service exports (the API
    test `dashboards` checks the same names against a live scrape)."""
    exported = exported_metrics()
    checked = []
    for doc in docs:
        if doc["kind"] == "PrometheusRule":
            for group in doc["spec"]["groups"]:
                for rule in group["rules"]:
                    name = rule.get("alert") or rule.get("record")
                    expr = rule["expr"]
                    if any(n in expr for n in EXTERNAL_METRICS):
                        import promql_parser
                        promql_parser.parse(expr)
                    else:
                        check_promql(expr, f"{case}: rule {name}", exported)
                    checked.append(name)
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-dashboard"):
            (body,) = doc["data"].values()
            dashboard = json.loads(body)
            variables = {"$" + v["name"] for v in dashboard["templating"]["list"]} | {"$__rate_interval"}
            ids = [p["id"] for p in dashboard["panels"]]
            if len(ids) != len(set(ids)):
                fail(f"{case}: dashboard panel ids repeat")
            for panel in dashboard["panels"]:
                if panel["type"] == "row":
                    continue
                if not panel.get("targets"):
                    fail(f"{case}: dashboard panel {panel['title']!r} has no query")
                for target in panel["targets"]:
                    expr = target["expr"]
                    for used in re.findall(r"\$\w+", expr):
                        if used not in variables:
                            fail(f"{case}: panel {panel['title']!r} uses undefined {used}")
                    for var, value in DASHBOARD_VARIABLES.items():
                        expr = expr.replace(var, value)
                    check_promql(expr, f"{case}: panel {panel['title']!r}", exported)
            checked.append(f"dashboard ({len(ids)} panels)")
    if checked:
        print(f"    ok observability {case}: PromQL parses, only exported metrics: {', '.join(checked)}")


def cmd_chart(out_dir: str) -> None:
    import helm_python as helm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, dict | None]] = [("default", None)]
    for path in sorted(glob.glob(str(CHART / "ci" / "*-values.yaml"))):
        cases.append((Path(path).name.removesuffix("-values.yaml"), yaml.safe_load(Path(path).read_text())))

    with helm.Chart.load(str(CHART)) as chart:
        print(f"    Helm SDK {helm.helm_sdk_version()}, chart {chart.name} {chart.version}")
        for case, values in cases:
            lint_chart(helm, values, case)
            chart.validate_schema(values)
            rendered = render(chart, values)
            # An upgrade renders the same objects (the hook Job included).
            if sorted(render(chart, values, upgrade=True)) != sorted(rendered):
                fail(f"{case}: install and upgrade render different templates")
            docs = write_manifests(rendered, out, case)
            check_invariants(docs, case)
            check_observability(docs, case)
            print(f"    ok rendered {case}: {len(docs)} objects -> {out / (case + '.yaml')}")
        for values, expected in REFUSED:
            try:
                render(chart, values)
            except helm.HelmError as error:
                if expected not in str(error):
                    fail(f"values {values} were refused for another reason: {error}")
            else:
                fail(f"values {values} rendered, but the chart must refuse them")
        print(f"    ok the chart refuses {len(REFUSED)} unworkable settings")


# -------------------------------------------------------------- compose


def cmd_compose() -> None:
    """What dclint (the Compose schema) cannot see: references between
    services and between the compose file and envoy.yaml."""
    compose_file = ROOT / "deploy" / "compose.yaml"
    compose = yaml.safe_load(compose_file.read_text())
    services = compose["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            if dep not in services:
                fail(f"compose: {name} depends on unknown service {dep}")
    # Envoy's upstreams must be the compose replicas.
    envoy = yaml.safe_load((ROOT / "deploy" / "envoy.yaml").read_text())
    hosts = {
        ep["endpoint"]["address"]["socket_address"]["address"]
        for cluster in envoy["static_resources"]["clusters"]
        for group in cluster["load_assignment"]["endpoints"]
        for ep in group["lb_endpoints"]
    }
    missing = hosts - set(services)
    if missing:
        fail(f"envoy.yaml routes to hosts that compose does not define: {sorted(missing)}")
    secrets = {s["environment"].get("OSMIUM_JWT_SECRET") for n, s in services.items() if n.startswith("chat-")}
    if len(secrets) != 1:
        fail("compose: the replicas must share one OSMIUM_JWT_SECRET")
    # seed.sh's default must sign tokens this stack accepts.
    (secret,) = secrets
    if f'OSMIUM_JWT_SECRET:-{secret}' not in (ROOT / "deploy" / "ghz" / "seed.sh").read_text():
        fail("deploy/ghz/seed.sh does not default to the compose stack's OSMIUM_JWT_SECRET")
    print(f"    ok {compose_file.relative_to(ROOT)}: {len(services)} services, dependencies resolve, Envoy upstreams {sorted(hosts)} exist")


# ---------------------------------------------------------------- envoy


def _load_types(config) -> None:
    """Imports the generated modules of every @type the config names, so that
    the Any fields can be parsed and checked too."""
    if isinstance(config, dict):
        type_url = config.get("@type")
        if type_url:
            package = type_url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            module = importlib.import_module(package)
            for info in pkgutil.iter_modules(module.__path__):
                if info.name.endswith("_pb2"):
                    importlib.import_module(f"{package}.{info.name}")
        for value in config.values():
            _load_types(value)
    elif isinstance(config, list):
        for value in config:
            _load_types(value)


def _deprecated_fields(message, path: str = "") -> list[str]:
    from google.protobuf import symbol_database

    found = []
    if message.DESCRIPTOR.full_name == "google.protobuf.Any":
        name = message.TypeName()
        inner = symbol_database.Default().GetSymbol(name)()
        message.Unpack(inner)
        return _deprecated_fields(inner, path)
    for field, value in message.ListFields():
        where = f"{path}.{field.name}" if path else field.name
        if field.GetOptions().deprecated:
            found.append(where)
        if field.message_type is None:
            continue
        if field.is_repeated:
            if field.message_type.GetOptions().map_entry:
                values = value.values() if field.message_type.fields_by_name["value"].message_type else []
            else:
                values = value
            for i, item in enumerate(values):
                found += _deprecated_fields(item, f"{where}[{i}]")
        else:
            found += _deprecated_fields(value, where)
    return found


def cmd_envoy() -> None:
    from google.protobuf import json_format
    from envoy.config.bootstrap.v3 import bootstrap_pb2

    path = ROOT / "deploy" / "envoy.yaml"
    config = yaml.safe_load(path.read_text())
    _load_types(config)
    try:
        bootstrap = json_format.ParseDict(config, bootstrap_pb2.Bootstrap())
    except json_format.ParseError as error:
        fail(f"{path}: not a valid envoy.config.bootstrap.v3.Bootstrap: {error}")
    deprecated = _deprecated_fields(bootstrap)
    if deprecated:
        fail(f"{path}: deprecated Envoy fields: {deprecated}")
    clusters = [c.name for c in bootstrap.static_resources.clusters]
    print(f"    ok {path.relative_to(ROOT)}: Envoy v3 Bootstrap, no deprecated fields, clusters {clusters}")


# ------------------------------------------------------------------ ghz

# ghz's configuration keys (runner.Config's JSON names).
GHZ_KEYS = {
    "proto", "protoset", "call", "cacert", "cert", "key", "count-errors", "skipTLS",
    "skipFirst", "cname", "authority", "insecure", "total", "async", "concurrency",
    "concurrency-schedule", "concurrency-start", "concurrency-end", "concurrency-step",
    "concurrency-step-duration", "concurrency-max-duration", "connections", "rps",
    "duration", "duration-stop", "max-duration", "timeout", "data", "data-file",
    "binary-file", "metadata", "metadata-file", "stream-interval",
    "stream-call-duration", "stream-call-count", "stream-dynamic-messages", "output",
    "format", "connect-timeout", "keepalive", "cpus", "import-paths", "name", "tags",
    "reflect-metadata", "debug", "host", "enable-compression", "load-schedule",
    "load-start", "load-end", "load-step", "load-step-duration", "load-max-duration",
    "lb-strategy", "max-recv-message-size", "max-send-message-size",
    "disable-template-functions", "disable-template-data",
}
DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")
# Calls whose request messages the configs must cover.
GHZ_CALLS = {"GetChats", "GetChat", "SendMessage", "GetHistory", "MarkChatRead", "SetTyping"}
TEMPLATE_ENV = re.compile(r"\{\{env `([A-Z_]+)`\}\}")


def cmd_ghz() -> None:
    seed = (ROOT / "deploy" / "ghz" / "seed.sh").read_text()
    seen = set()
    for path in sorted((ROOT / "deploy" / "ghz").glob("*.json")):
        config = json.loads(path.read_text())
        name = path.relative_to(ROOT)
        unknown = set(config) - GHZ_KEYS
        if unknown:
            fail(f"{name}: keys ghz does not know: {sorted(unknown)}")
        if "proto" in config or "protoset" in config:
            fail(f"{name}: must use server reflection (no proto/protoset)")
        service, _, method = config["call"].rpartition(".")
        if service != "osmium.chat.v1.ChatService" or method not in GHZ_CALLS:
            fail(f"{name}: unexpected call {config['call']}")
        seen.add(method)
        # Bounded in count and in time, whatever the flags.
        if not (0 < int(config.get("total", 0)) <= 100_000):
            fail(f"{name}: needs a bounded total")
        if "duration" in config:
            fail(f"{name}: duration makes ghz ignore total; use max-duration")
        if not DURATION.match(config.get("max-duration", "")):
            fail(f"{name}: needs max-duration")
        if not config.get("metadata", {}).get("authorization", "").startswith("Bearer "):
            fail(f"{name}: needs the authorization metadata")
        # Every variable the templates read must be one seed.sh exports.
        for var in TEMPLATE_ENV.findall(json.dumps(config)):
            if f"export {var}=" not in seed:
                fail(f"{name}: reads {var}, which seed.sh does not export")
    if seen != GHZ_CALLS:
        fail(f"deploy/ghz: no config for {sorted(GHZ_CALLS - seen)}")
    print(f"    ok deploy/ghz: {len(seen)} configs, reflection only, bounded, variables exported by seed.sh")


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    {"chart": cmd_chart, "compose": cmd_compose, "envoy": cmd_envoy, "ghz": cmd_ghz}[command](*args)


if __name__ == "__main__":
    main()

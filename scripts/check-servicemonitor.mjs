// Validates rendered ServiceMonitor and PrometheusRule objects against the prometheus-operator
// CRD schema (types, required fields, patterns, enums), which
// kubernetes-validate does not carry. Run by scripts/check-deploy.sh as
//   node scripts/check-servicemonitor.mjs <objects.json>...
// with OSMIUM_NODE_MODULES set to the tool cache's node_modules.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// ESM imports ignore NODE_PATH, and the package exports ESM only, so the
// module is loaded by its path in the tool cache's node_modules.
const nodeModules = process.env.OSMIUM_NODE_MODULES;
if (!nodeModules) {
  console.error("FAIL set OSMIUM_NODE_MODULES to the node_modules holding @kubernetes-models/prometheus-operator");
  process.exit(2);
}
const { ServiceMonitor } = await import(
  pathToFileURL(join(nodeModules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js")).href
);

const { PrometheusRule } = await import(
  pathToFileURL(join(nodeModules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js")).href
);

const models = {
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};
let failed = false;
for (const file of process.argv.slice(2)) {
  for (const object of JSON.parse(readFileSync(file, "utf8"))) {
    const id = `${object.apiVersion}/${object.kind}`;
    const Model = models[id];
    if (!Model) {
      console.error(`FAIL ${file}: no schema for ${id}`);
      failed = true;
      continue;
    }
    try {
      new Model(object).validate();
      console.log(`    ok ${file}: ${object.kind}/${object.metadata.name} matches the ${id} schema`);
    } catch (error) {
      console.error(`FAIL ${file}: ${object.kind}/${object.metadata.name}: ${error.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);

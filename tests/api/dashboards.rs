//! The chart's Grafana dashboard and alerts query only metrics that a
//! running replica really exports, under the names it exports them.

use std::collections::BTreeSet;

use osmium_chat::proto::chats;

use crate::helpers::{scrape, Engine, TestApp};

/// The files whose PromQL is checked, from the repository root.
const QUERY_FILES: [&str; 2] = [
    "helm/osmium-chat/dashboards/osmium-chat.json",
    "helm/osmium-chat/templates/prometheusrule.yaml",
];

/// Every `osmium_*` metric name a text mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("osmium_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The names of the samples in a Prometheus text exposition.
fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| line.starts_with("osmium_"))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_dashboard_and_alerts_use_only_metrics_a_replica_exports() {
    let app = TestApp::spawn(Engine::PostgresRedis).await;
    let mut ann = app.user("Ann").await;
    ann.client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists");
    let exported = sample_names(&scrape(app.metrics_port).await);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in QUERY_FILES {
        let text = std::fs::read_to_string(root.join(file)).expect("the file is there");
        // The dashboard's queries only, not its panel descriptions.
        let queries: String = if file.ends_with(".json") {
            text.lines().filter(|l| l.contains("\"expr\":")).collect()
        } else {
            text
        };
        let used = metric_names(&queries);
        assert!(
            used.len() >= 5,
            "{file} queries the service's metrics: {used:?}"
        );
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries {unknown:?}, which a replica does not export; it exports {exported:?}"
        );
    }
}

//! Settings as flags and environment give them.

use super::*;

#[test]
fn durations_read_with_their_units() {
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_duration("7").is_err());
    assert!(parse_duration("7w").is_err());
    assert_eq!(parse_duration_or_secs("20"), Ok(Duration::from_secs(20)));
    assert_eq!(parse_duration_or_secs("1m"), Ok(Duration::from_secs(60)));
}

#[test]
fn flags_may_follow_the_subcommand() {
    let cli = Cli::try_parse_from([
        "osmium-chat",
        "token",
        "--user",
        "7",
        "--jwt-audience",
        "other",
        "--jwt-secret",
        "s",
    ])
    .expect("parses");
    assert_eq!(cli.settings.jwt_audience, "other");
    assert_eq!(
        cli.settings.jwt_secret.as_ref().map(Secret::expose),
        Some("s")
    );
    assert!(matches!(cli.command, Some(Command::Token { user: 7, .. })));
}

#[test]
fn user_zero_is_refused_before_a_token_is_minted() {
    let refused = Cli::try_parse_from(["osmium-chat", "token", "--user", "0"])
        .expect_err("user 0 is not a user");
    assert!(refused.to_string().contains("--user"), "{refused}");
}

#[test]
fn debug_output_redacts_every_secret() {
    let settings = Settings {
        database_url: Some(Secret::new("postgres://app:pg-hunter2@db/app")),
        redis_url: Some(Secret::new("redis://:redis-hunter2@cache:6379")),
        jwt_secret: Some(Secret::new("jwt-hunter2")),
        ..Settings::default()
    };
    let shown = format!("{settings:?} {settings:#?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[test]
fn reads_at_once_must_be_at_least_one() {
    let refused = Cli::try_parse_from(["osmium-chat", "--db-read-concurrency", "0"])
        .expect_err("no read could ever run");
    assert!(
        refused.to_string().contains("--db-read-concurrency"),
        "{refused}"
    );
    let cli = Cli::try_parse_from(["osmium-chat", "--db-read-concurrency", "3"]).expect("parses");
    assert_eq!(cli.settings.db_read_concurrency, 3);
    assert_eq!(Settings::default().db_read_concurrency, 8);
}

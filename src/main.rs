//! Entry point: reads settings and runs the chosen command.
//!
//! Exit codes: 0 after a clean stop; 64 ([`EXIT_CONFIG`]) for settings that
//! cannot work (bad flags or URLs, a refused login, a missing database);
//! 69 ([`EXIT_UNAVAILABLE`]) for a dependency that cannot be reached or a
//! port already taken; 1 for anything else.

use std::process::ExitCode;

use clap::Parser;
use osmium_chat::config::{Cli, Command, ConfigError};
use osmium_chat::startup::{open_store, Application, StartError, EXIT_CONFIG, EXIT_OTHER};
use osmium_chat::{auth, shutdown, telemetry};

/// Small, short-lived allocations (rows, messages, HTTP/2 frames) on every
/// call: mimalloc's thread-local free lists cost less per call than glibc's
/// malloc (the load benchmark's A/B in the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version land here too, and are not failures.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let _telemetry = telemetry::init(&cli.settings.log_format);
    let settings = cli.settings;
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match Application::build(settings).await {
            Ok(app) => app.run_until_stopped(shutdown::signal()).await,
            Err(error) => Err(error),
        },
        Command::Migrate => match settings.database_url {
            None => Err(ConfigError("migrate needs DATABASE_URL".into()).into()),
            Some(_) => open_store(&settings)
                .await
                .map(|_| tracing::info!("migrations applied")),
        },
        Command::Token {
            user,
            name,
            service,
            ttl,
        } => {
            let secret = match settings.jwt_secret() {
                Ok(Some(secret)) => secret,
                Ok(None) => {
                    return fail(
                        &ConfigError("token signs with OSMIUM_JWT_SECRET, and none is set".into())
                            .into(),
                    )
                }
                Err(error) => return fail(&error.into()),
            };
            match auth::issue(
                secret.expose().as_bytes(),
                &settings.jwt_audience,
                user,
                name.as_deref(),
                service,
                ttl.as_secs(),
            ) {
                Ok(token) => {
                    println!("{token}");
                    Ok(())
                }
                Err(error) => {
                    eprintln!("cannot sign a token: {error}");
                    return ExitCode::from(EXIT_OTHER);
                }
            }
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Reports why the process stops, with the whole cause chain, and returns
/// the exit code of its class. The log is where an operator looks (a pod's
/// log); with logging filtered off, stderr still says it.
fn fail(error: &StartError) -> ExitCode {
    let code = error.exit_code();
    let report = error.report();
    if tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!(exit_code = code, "osmium-chat failed: {report}");
    } else {
        eprintln!("osmium-chat failed: {report}");
    }
    ExitCode::from(code)
}

//! Entry point: reads settings and runs the chosen command.

use std::process::ExitCode;

use clap::Parser;
use osmium_chat::config::{Cli, Command};
use osmium_chat::startup::{open_store, Application, StartError};
use osmium_chat::{auth, shutdown, telemetry};

/// sysexits' EX_CONFIG-style code for settings that cannot work.
const EXIT_CONFIG: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = telemetry::init(&cli.settings.log_format);
    let settings = cli.settings;
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match Application::build(settings).await {
            Ok(app) => app.run_until_stopped(shutdown::signal()).await,
            Err(error) => Err(error),
        },
        Command::Migrate => {
            if settings.database_url.is_none() {
                eprintln!("migrate needs DATABASE_URL");
                return ExitCode::from(EXIT_CONFIG);
            }
            open_store(&settings)
                .await
                .map(|_| tracing::info!("migrations applied"))
        }
        Command::Token {
            user,
            name,
            service,
            ttl,
        } => {
            let secret = match settings.jwt_secret() {
                Ok(Some(secret)) => secret,
                Ok(None) => {
                    eprintln!("token signs with OSMIUM_JWT_SECRET, and none is set");
                    return ExitCode::from(EXIT_CONFIG);
                }
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match auth::issue(
                secret.expose().as_bytes(),
                &settings.jwt_audience,
                user,
                name.as_deref(),
                service,
                ttl,
            ) {
                Ok(token) => {
                    println!("{token}");
                    Ok(())
                }
                Err(error) => {
                    eprintln!("cannot sign a token: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(error)) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            tracing::error!(%error, "osmium-chat failed");
            ExitCode::FAILURE
        }
    }
}

//! Logging, set up once per process.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `RUST_LOG` filters (default `info`); JSON lines in production, text otherwise.
pub fn init(format: &LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests start many servers in one process) is harmless.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

//! The signal that starts a graceful stop.

use std::future::Future;

/// Resolves on SIGTERM (Kubernetes) or SIGINT (a terminal, Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a SIGTERM that arrives just after the replica says it is
/// serving still drains it instead of killing it.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        async move {
            let interrupted = async {
                match interrupt.as_mut() {
                    Some(stream) => stream.recv().await,
                    None => std::future::pending().await,
                }
            };
            let terminated = async {
                match terminate.as_mut() {
                    Some(stream) => stream.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = interrupted => tracing::info!("SIGINT received; draining"),
                _ = terminated => tracing::info!("SIGTERM received; draining"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received; draining");
        } else {
            std::future::pending::<()>().await;
        }
    }
}

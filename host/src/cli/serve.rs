//! `retention serve`: the service wired to the process: the config loaded once, the admin API's listener bound, the
//! signals (SIGTERM and SIGINT stop, SIGHUP reloads) turned into calls on the service, whose graceful shutdown is also
//! the API's shutdown signal.

use std::path::Path;
use std::sync::Arc;

use super::UsageError;
use crate::config::Config;
use crate::service::{Service, exposure_warnings, scheduler};

/// Runs the service until SIGTERM or SIGINT; SIGHUP reloads config and plugins. Returns the exit code.
pub(super) async fn serve(config_path: &Path) -> anyhow::Result<i32> {
    use tokio::signal::unix::{SignalKind, signal};

    let config = Config::load_service(config_path).map_err(|e| UsageError(e.to_string()))?;
    let listen = config.service.listen;
    let has_token = config.service.api_token.is_some();
    if !listen.ip().is_loopback() && !has_token {
        return Err(UsageError(format!(
            "service.listen: {listen} is reachable from other machines, which needs an API token \
             ({} or service.api_token): without one anyone who reaches it could read the datasets, holds and audit \
             trail; listen on 127.0.0.1, or set a token and put a TLS-terminating proxy in front",
            crate::config::API_TOKEN_ENV
        ))
        .into());
    }
    for w in exposure_warnings(&config.service) {
        tracing::warn!("{w}");
    }
    let service = Service::new(config_path, config, Arc::new(scheduler::SystemClock))?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| UsageError(format!("service.listen: cannot listen on {listen}: {e}")))?;
    let stop = service.shutdown_token();
    let api = tokio::spawn(crate::api::serve(listener, service.clone(), async move {
        stop.cancelled().await
    }));
    tracing::info!(
        %listen,
        state = %service.state.path().display(),
        plugins = %service.plugins.dir().display(),
        "retention service starting{}",
        if has_token { "" } else { " (no API token: mutating endpoints are refused)" }
    );
    service.start().await?;
    tracing::info!("ready");

    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading config and plugins");
                if let Err(e) = service.reload_config().await {
                    tracing::error!("config reload refused, the running config stays: {e}");
                }
            }
        }
    }
    let clean = service.shutdown().await;
    if !clean {
        tracing::warn!("passes still running after the shutdown timeout: exiting anyway (the next start recovers)");
    }
    // The API stops with the shutdown token; its in-flight requests wait only on passes, which are over by now.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), api).await;
    tracing::info!("stopped");
    Ok(0)
}

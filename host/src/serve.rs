//! `punktfunk-host serve`: start every service and run until asked to stop.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::encode::probe::Encoders;
use crate::identity::HostIdentity;
use crate::pairing::PairingManager;
use crate::session::SessionManager;
use crate::session::router::MediaSockets;
use crate::state::HostState;
use crate::store::Store;
use crate::{control_socket, discovery, gamestream, mgmt, service_notify, session, tls};

async fn listen(config: &Config, port: u16, what: &str) -> Result<TcpListener> {
    let addr = SocketAddr::new(config.bind, port);
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen for {what} on {addr}: is another streaming host (Sunshine, another \
             punktfunk) running? Choose other ports with --port-base"
        )
    })
}

/// Runs the host until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<()> {
    crate::net::listener::raise_fd_limit();
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state directory {}", config.state_dir.display()))?;
    // The store holds client certificates and the directory the host key.
    std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", config.state_dir.display()))?;
    let lost_store = crate::store::lost_store_warning(&config.state_dir, &config.store_path());
    if let Some(warning) = &lost_store {
        tracing::error!("{warning}");
    }
    let store = Store::open(&config.store_path())
        .await
        .with_context(|| format!("opening the store {}", config.store_path().display()))?;
    let stored = crate::settings::HostSettings::load(&store, &config).await?;
    let config = config.with_stored_port_base(stored.port_base)?;
    let identity =
        HostIdentity::load_or_create(&config.state_dir, &store, config.hostname.as_deref()).await?;
    let encoders = tokio::task::spawn_blocking(Encoders::probe).await?;
    let pairing = PairingManager::new(
        Arc::new(identity.server_identity()?),
        store.clone(),
        config.pin_timeout(),
        config.exchange_timeout(),
    );
    let catalog = Catalog::new(&config.apps, store.clone());
    let nvhttp_tls = TlsAcceptor::from(tls::nvhttp_config(&identity)?);
    let web_tls = TlsAcceptor::from(tls::web_config(&identity)?);
    let ports = config.ports;

    let http = listen(&config, ports.http, "GameStream HTTP").await?;
    let https = listen(&config, ports.https, "GameStream HTTPS").await?;
    let web = listen(&config, ports.web, "the management API").await?;
    let rtsp = listen(&config, ports.rtsp, "RTSP").await?;
    let sockets = MediaSockets::bind(&config).context(
        "cannot bind the video and audio ports: is another streaming host running? Choose other ports with --port-base",
    )?;
    let streams = SessionManager::new(config.clone(), encoders.clone(), sockets)?;
    let control = control_socket::bind(&config.control_socket()).await?;
    let state = HostState::new(
        config,
        identity,
        store.clone(),
        pairing,
        catalog,
        encoders,
        streams,
    );

    if let Some(warning) = lost_store {
        state
            .warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(warning);
    }
    tracing::info!(
        hostname = %state.identity.hostname,
        http = ports.http,
        https = ports.https,
        web = ports.web,
        rtsp = ports.rtsp,
        codecs = state.encoders.codec_mode_support(),
        "punktfunk host ready: add it in Moonlight by this machine's address"
    );
    service_notify::ready(&format!(
        "serving {} on ports {} (HTTP), {} (HTTPS), {} (web)",
        state.identity.hostname, ports.http, ports.https, ports.web
    ));
    let advertiser = if state.config.discovery.mdns {
        let (name, port) = (state.hostname(), ports.http);
        match tokio::task::spawn_blocking(move || discovery::Advertiser::start(&name, port)).await?
        {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(
                    "Moonlight will not find this host by itself (add it by address): {e:#}"
                );
                None
            }
        }
    } else {
        tracing::info!(
            "mDNS discovery is off ([discovery] mdns = false): add the host in Moonlight by address"
        );
        None
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(interval) = service_notify::watchdog_interval() {
        tasks.spawn(async move {
            service_notify::watchdog(interval).await;
            Ok(())
        });
    }
    tasks.spawn(gamestream::nvhttp::serve_http(http, state.clone()));
    tasks.spawn(gamestream::nvhttp::serve_https(
        https,
        nvhttp_tls,
        state.clone(),
    ));
    tasks.spawn(mgmt::serve(web, web_tls, state.clone()));
    tasks.spawn(control_socket::serve(control, state.clone()));
    tasks.spawn(gamestream::rtsp_server::serve(rtsp, state.clone()));
    tasks.spawn(reap_streams(state.clone()));
    tasks.spawn(crate::native::service::run(state.clone()));
    tasks.spawn(watch_session(state.clone()));
    // The services only return on a fatal error; a signal is the normal way out.
    let outcome = tokio::select! {
        sig = shutdown_signal() => sig.map(|sig| tracing::info!("received {sig}, shutting down")),
        () = state.lifecycle.restart_wanted() => Ok(()),
        Some(ended) = tasks.join_next() => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow::anyhow!("a service task failed: {e}")),
        },
    };
    service_notify::stopping();
    if let Some(a) = advertiser {
        // Goodbye packets first: clients drop the host at once.
        let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    state.streams.end_all(crate::session::EndReason::Shutdown);
    {
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            s.apps().cancel_all();
            for stopping in s.streams.stop_all("the host is shutting down") {
                stopping.join();
            }
            s.display.stop_all("the host is shutting down");
        })
        .await;
    }
    let _ = std::fs::remove_file(state.config.control_socket());
    store.close().await;
    if outcome.is_ok() && state.lifecycle.restart_requested() {
        // Only returns if the re-exec failed.
        let e = crate::lifecycle::restart_process();
        return Err(anyhow::Error::new(e).context("restarting punktfunk-host"));
    }
    outcome
}

/// Joins the threads of streams that ended by themselves (client gone), so their
/// ports and encoders are freed within a second.
async fn reap_streams(state: Arc<HostState>) -> Result<()> {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let s = state.clone();
        let ended = tokio::task::spawn_blocking(move || s.streams.take_ended()).await?;
        for (session, reason) in ended
            .into_iter()
            .filter(|(_, r)| session::is_client_timeout(r))
        {
            let s = state.clone();
            let why = format!("the client timed out ({reason})");
            tokio::task::spawn_blocking(move || s.end_session(session, &why)).await?;
        }
    }
}

/// Notices an app that exited by itself (or a compositor that died): the client gets
/// its termination, and status keeps the exit code.
async fn watch_session(state: Arc<HostState>) -> Result<()> {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tick.tick().await;
        let s = state.clone();
        for (session, reason) in tokio::task::spawn_blocking(move || s.display.poll()).await? {
            let s = state.clone();
            tokio::task::spawn_blocking(move || s.end_session(session, &reason)).await?;
        }
    }
}

async fn shutdown_signal() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

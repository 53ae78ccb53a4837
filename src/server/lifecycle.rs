//! Signals and stopping. `SIGHUP` reloads, `SIGUSR1` reopens the access log: both are
//! handled from the start, so they never end the process (their default action).
//! `SIGTERM` drains, as an Istio gateway does: `/ready` answers 503 at once (systemd
//! hears `STOPPING=1`), the listeners keep accepting for `drainDuration` so load
//! balancers see the 503 first, then stop; open connections are told (keep-alive ends
//! with `Connection: close`, HTTP/2 gets GOAWAY, idle keep-alive connections close) and
//! get until `terminationDrainDuration` after the signal to finish; the access log is
//! flushed and the process exits 0. `SIGINT` stops at once.

use super::Control;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

/// Registers `SIGHUP` and `SIGUSR1` now (before serving) and handles them on a thread of
/// their own: a reload compiles the config off the serving threads.
pub(super) fn handle_signals(control: Arc<Control>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let handlers = runtime.and_then(|rt| {
        let (hup, usr1) = {
            let _in = rt.enter();
            (
                signal(SignalKind::hangup())?,
                signal(SignalKind::user_defined1())?,
            )
        };
        Ok((rt, hup, usr1))
    });
    let (runtime, mut hup, mut usr1) = match handlers {
        Ok(h) => h,
        Err(e) => {
            log::error!("cannot handle SIGHUP/SIGUSR1: {e}");
            std::process::exit(1);
        }
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                loop {
                    tokio::select! {
                        Some(()) = hup.recv() => {
                            log::info!("SIGHUP: reloading the configuration");
                            let c = control.clone();
                            // Compiling may take a while on a large config.
                            let _ = tokio::task::spawn_blocking(move || c.reload()).await;
                        }
                        Some(()) = usr1.recv() => {
                            log::info!("SIGUSR1: reopening the access log");
                            crate::telemetry::access_log::writer::request_reopen();
                        }
                        else => return,
                    }
                }
            })
        })
        .expect("spawn the signal thread");
}

/// Pingora's shutdown signal, replaced: Pingora stops only once the drain is over.
pub(super) struct Stop(pub Arc<Control>);

#[async_trait::async_trait]
impl ShutdownSignalWatch for Stop {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            log::error!("cannot handle SIGTERM/SIGINT");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = int.recv() => {
                log::info!("SIGINT: stopping now");
                self.0.telemetry.flush();
                ShutdownSignal::FastShutdown
            }
            _ = term.recv() => {
                self.0.drain(&mut int).await;
                ShutdownSignal::FastShutdown
            }
        }
    }
}

impl Control {
    async fn drain(&self, int: &mut Signal) {
        let signalled = Instant::now();
        let settings = self.shared.load().snapshot.downstream.clone();
        self.draining.store(true, Ordering::Relaxed);
        crate::notify::notify("STOPPING=1");
        log::info!(
            "SIGTERM: draining; /ready answers 503, listeners accept for {:?} more",
            settings.drain_duration
        );
        let interrupted = tokio::select! {
            _ = tokio::time::sleep(settings.drain_duration) => false,
            _ = int.recv() => true,
        };
        self.acceptors.stop_all();
        let _ = self.connections_shutdown.send(true);
        if !interrupted {
            let deadline = signalled + settings.termination_drain_duration;
            loop {
                let open = self.listeners.open_connections();
                if open == 0 {
                    log::info!("drained");
                    break;
                }
                if Instant::now() >= deadline {
                    log::warn!(
                        "{open} connection(s) still open at terminationDrainDuration; closing"
                    );
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = int.recv() => break,
                }
            }
        }
        self.telemetry.flush();
    }
}

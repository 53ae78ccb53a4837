//! Signals and stopping. `SIGHUP` reloads, `SIGUSR1` reopens the access log: both are
//! handled from the start, so they never end the process (their default action).
//! `SIGTERM` drains, as an Istio gateway does: `/ready` answers 503 at once (systemd
//! hears `STOPPING=1`), the listeners keep accepting for `drainDuration` so load
//! balancers see the 503 first, then stop; open connections are told (keep-alive ends
//! with `Connection: close`, HTTP/2 gets GOAWAY, idle keep-alive connections close) and
//! get until `terminationDrainDuration` after the signal to finish; the access log is
//! flushed and the process exits 0. `SIGINT` stops at once. `SIGQUIT` hands the
//! listening sockets to a new process started with `--upgrade` (binary upgrade), then
//! stops accepting at once and drains the same way: no connection is refused. `SIGUSR2`
//! does the whole upgrade in place, as nginx's: it starts the binary at the path this one
//! was started from (a package upgrade has replaced it) with the same arguments and
//! `--upgrade`, hands it the sockets once it waits, tells systemd the new process is the
//! service's main process (`MAINPID=`), then drains and exits.

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
        let (hup, usr1, usr2) = {
            let _in = rt.enter();
            (
                signal(SignalKind::hangup())?,
                signal(SignalKind::user_defined1())?,
                signal(SignalKind::user_defined2())?,
            )
        };
        Ok((rt, hup, usr1, usr2))
    });
    let (runtime, mut hup, mut usr1, mut usr2) = match handlers {
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
                        Some(()) = usr2.recv() => {
                            log::info!("SIGUSR2: upgrading in place");
                            let c = control.clone();
                            let done = tokio::task::spawn_blocking(move || c.upgrade_in_place()).await;
                            match done {
                                Ok(Ok(pid)) => {
                                    log::info!("upgrade: process {pid} serves; draining");
                                    control.handed_over.notify_one();
                                }
                                Ok(Err(e)) => log::error!("upgrade failed, still serving: {e}"),
                                Err(e) => log::error!("upgrade failed, still serving: {e}"),
                            }
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
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            log::error!("cannot handle SIGTERM/SIGINT/SIGQUIT");
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {
                    log::info!("SIGINT: stopping now");
                    self.0.telemetry.flush();
                    return ShutdownSignal::FastShutdown;
                }
                _ = term.recv() => {
                    let accept_for = self.0.shared.load().snapshot.downstream.drain_duration;
                    log::info!(
                        "SIGTERM: draining; /ready answers 503, listeners accept for {accept_for:?} more"
                    );
                    self.0.drain(&mut int, accept_for).await;
                    return ShutdownSignal::FastShutdown;
                }
                _ = self.0.handed_over.notified() => {
                    self.0.drain(&mut int, Duration::ZERO).await;
                    return ShutdownSignal::FastShutdown;
                }
                _ = quit.recv() => match self.0.hand_over() {
                    Ok(n) => {
                        log::info!("SIGQUIT: {n} listening socket(s) handed to the new process; draining");
                        self.0.drain(&mut int, Duration::ZERO).await;
                        return ShutdownSignal::FastShutdown;
                    }
                    Err(e) => log::error!("SIGQUIT: upgrade hand-over failed, still serving: {e}"),
                },
            }
        }
    }
}

impl Control {
    /// Sends every listening socket (the gateway's and the admin listener's) to the
    /// process waiting on the upgrade socket.
    fn hand_over(&self) -> Result<usize, String> {
        let fds = self
            .acceptors
            .fds()
            .ok_or("the listeners have not started yet")?;
        let path = self.upgrade_socket.display().to_string();
        let table = fds.lock();
        table
            .send_to_sock(path.as_str())
            .map_err(|e| format!("{path}: {e} (is `meshgate run --upgrade` waiting there?)"))?;
        Ok(table.serialize().0.len())
    }

    /// Starts the new binary with `--upgrade`, waits until it listens on the upgrade
    /// socket, hands it the sockets and makes it systemd's main process; the new
    /// process's pid. A new process that exits first (a config it refuses, say) leaves
    /// this one serving.
    fn upgrade_in_place(&self) -> Result<u32, String> {
        let mut args = std::env::args_os();
        let program = args.next().ok_or("no program path")?;
        let mut rest: Vec<std::ffi::OsString> = args.filter(|a| a != "--upgrade").collect();
        rest.push("--upgrade".into());
        if !rest.iter().any(|a| a == "--upgrade-socket") {
            rest.push("--upgrade-socket".into());
            rest.push(self.upgrade_socket.clone().into_os_string());
        }
        let _ = std::fs::remove_file(&self.upgrade_socket);
        let mut child = std::process::Command::new(&program)
            .args(&rest)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.to_string_lossy()))?;
        let waited = std::time::Instant::now();
        while !self.upgrade_socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the new process exited first ({status})"));
            }
            if waited.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                return Err("the new process did not wait on the upgrade socket".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = self.hand_over()?;
        log::info!(
            "upgrade: {sent} listening socket(s) handed to process {}",
            child.id()
        );
        let pid = child.id();
        crate::notify::notify(&format!("MAINPID={pid}"));
        // The new process outlives this one (dropping the handle neither waits nor kills).
        drop(child);
        Ok(pid)
    }

    /// `/ready` 503 at once; accept for `accept_for` more; then stop accepting, tell
    /// open connections, and wait for them until `terminationDrainDuration` after the
    /// signal (or a SIGINT); flush the access log.
    async fn drain(&self, int: &mut Signal, accept_for: Duration) {
        let signalled = Instant::now();
        let settings = self.shared.load().snapshot.downstream.clone();
        self.draining.store(true, Ordering::Relaxed);
        crate::notify::notify("STOPPING=1");
        let interrupted = tokio::select! {
            _ = tokio::time::sleep(accept_for) => false,
            _ = int.recv() => true,
        };
        self.acceptors.stop_all();
        let _ = self.connections_shutdown.send(true);
        self.listeners.close_idle();
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

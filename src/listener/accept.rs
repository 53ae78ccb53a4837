//! The gateway's own accept loops, one per listener address, instead of Pingora's fixed
//! listening services: a reload starts loops for new addresses and stops those no
//! generation serves any more, while the sockets of unchanged addresses are never closed,
//! so no connection is refused across a reload. Each accepted connection is handed to
//! the application (the listener layer's `ServerApp`) as Pingora's own accept loop does.
//!
//! A binary upgrade hands the listening sockets to the new process through Pingora's
//! table of listening descriptors (`ListenFds`): every socket bound here is registered in
//! it (a duplicate descriptor, so the table and the loop each own theirs), and a process
//! started with `--upgrade` takes its sockets from the table instead of binding.

use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora::server::{ListenFds, ShutdownWatch};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

/// Pending connections a listener's queue holds (Pingora's and Envoy's default).
const BACKLOG: u32 = 65535;

/// The accept loops running, by address. Methods that bind must run inside a Tokio
/// runtime: the loops are spawned on it.
pub struct Acceptors<A> {
    app: Arc<A>,
    /// Handed to every connection: `true` tells them the gateway is draining (keep-alive
    /// ends, HTTP/2 sends GOAWAY).
    connections_shutdown: ShutdownWatch,
    running: Mutex<HashMap<SocketAddr, Running>>,
    /// Pingora's table of listening descriptors, the one an upgrade hands over.
    fds: std::sync::OnceLock<ListenFds>,
}

/// A running loop: told to stop through `stop`; `closed` hears when its socket is shut.
struct Running {
    stop: watch::Sender<bool>,
    closed: std::sync::mpsc::Receiver<()>,
}

/// How long stopping waits for a loop to close its socket.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

impl<A: ServerApp + Send + Sync + 'static> Acceptors<A> {
    pub fn new(app: Arc<A>, connections_shutdown: ShutdownWatch) -> Acceptors<A> {
        Acceptors {
            app,
            connections_shutdown,
            running: Mutex::new(HashMap::new()),
            fds: std::sync::OnceLock::new(),
        }
    }

    /// Joins Pingora's table of listening descriptors (given to services at start): the
    /// sockets an old process handed over are taken from it, new ones are added to it.
    pub fn use_fds(&self, fds: ListenFds) {
        log::debug!(
            "listening sockets handed over: {:?}",
            fds.lock().serialize().0
        );
        let _ = self.fds.set(fds);
    }

    /// The descriptor table, for handing the sockets to a new process.
    pub fn fds(&self) -> Option<&ListenFds> {
        self.fds.get()
    }

    /// The socket for `addr`: the one an old process handed over, else a new one, which
    /// is then registered for the next hand-over.
    fn listener(&self, addr: SocketAddr) -> std::io::Result<TcpListener> {
        let key = addr.to_string();
        let Some(fds) = self.fds.get() else {
            return bind(addr);
        };
        let mut table = fds.lock();
        if let Some(fd) = table.get(&key) {
            // SAFETY: the descriptor is open and owned by the table, which keeps it for
            // the process's life (or until `retain` closes it); it is only borrowed here
            // to duplicate it.
            let borrowed = unsafe { BorrowedFd::borrow_raw(*fd) };
            let std_listener = std::net::TcpListener::from(borrowed.try_clone_to_owned()?);
            std_listener.set_nonblocking(true)?;
            log::info!("{addr}: listening on the socket handed over");
            return TcpListener::from_std(std_listener);
        }
        let listener = bind(addr)?;
        let copy = listener.as_fd().try_clone_to_owned()?;
        table.add(key, copy.into_raw_fd());
        Ok(listener)
    }

    /// Binds and starts every address of `want` not accepting yet. All or nothing: when
    /// one cannot be bound, those started by this call are stopped again and the error
    /// names the address.
    pub fn add(&self, want: &[SocketAddr]) -> Result<(), (SocketAddr, std::io::Error)> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut started = Vec::new();
        for addr in want {
            if running.contains_key(addr) {
                continue;
            }
            match self.listener(*addr) {
                Ok(listener) => {
                    let (stop, stopped) = watch::channel(false);
                    let (on_close, closed) = std::sync::mpsc::channel();
                    tokio::spawn(accept_loop(
                        listener,
                        self.app.clone(),
                        self.connections_shutdown.clone(),
                        stopped,
                        on_close,
                    ));
                    running.insert(*addr, Running { stop, closed });
                    started.push(*addr);
                }
                Err(e) => {
                    let undo: Vec<Running> =
                        started.iter().filter_map(|a| running.remove(a)).collect();
                    close(undo);
                    return Err((*addr, e));
                }
            }
        }
        for a in started {
            log::info!("listening on {a}");
        }
        Ok(())
    }

    /// Stops accepting on every address not in `keep` and returns once their sockets are
    /// closed (a connection attempt is refused from then on); their open connections go
    /// on.
    pub fn retain(&self, keep: &[SocketAddr]) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<SocketAddr> = running
            .keys()
            .filter(|a| !keep.contains(a))
            .copied()
            .collect();
        let stopping: Vec<Running> = gone.iter().filter_map(|a| running.remove(a)).collect();
        drop(running);
        if let Some(fds) = self.fds.get() {
            // The table's copies too, or the sockets would stay open (and queue
            // connections nobody accepts).
            let mut table = fds.lock();
            let gone: Vec<String> = gone.iter().map(ToString::to_string).collect();
            // Every other entry stays (the admin listener's is there too).
            let keep: std::collections::HashSet<String> = table
                .serialize()
                .0
                .into_iter()
                .filter(|k| !gone.contains(k))
                .collect();
            let _ = table.close_unclaimed(&keep);
        }
        close(stopping);
        for a in gone {
            log::info!("{a}: no longer served; stopped accepting");
        }
    }

    /// Stops accepting everywhere (draining); open connections go on.
    pub fn stop_all(&self) {
        self.retain(&[]);
    }

    /// The addresses accepting now.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.keys().copied().collect()
    }
}

/// Tells loops to stop and waits (bounded) until each has closed its socket.
fn close(loops: Vec<Running>) {
    for l in &loops {
        let _ = l.stop.send(true);
    }
    for l in loops {
        let _ = l.closed.recv_timeout(CLOSE_WAIT);
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept_loop<A: ServerApp + Send + Sync + 'static>(
    listener: TcpListener,
    app: Arc<A>,
    shutdown: ShutdownWatch,
    mut stop: watch::Receiver<bool>,
    on_close: std::sync::mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => {
                drop(listener);
                let _ = on_close.send(());
                return;
            }
        };
        match accepted {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
                let mut stream = L4Stream::from(tcp);
                stream.set_socket_digest(digest);
                let (app, shutdown) = (app.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let mut next = app.process_new(Box::new(stream) as Stream, &shutdown).await;
                    while let Some(s) = next {
                        next = app.process_new(s, &shutdown).await;
                    }
                });
            }
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) keeps failing at once: back off
                // a little rather than spin, as Pingora's loop does.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

//! The access log's file, written off the request path, as Envoy's file access log:
//! lines are appended to a shared buffer (a short lock, never held across I/O) that one
//! thread writes out every second (Envoy's `file_flush_interval_msec`) or as soon as
//! 64 KiB are waiting. A request never waits on the disk, and never wakes the writer for a
//! line of its own (waking it per line cost a futex call and two context switches per
//! request). When the buffer holds its cap the line is dropped and counted. `SIGUSR1`
//! reopens the file (logrotate's `postrotate`): a moved file is let go, a new one created.

use prometheus::IntCounter;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long a line may wait in the buffer (Envoy's default flush interval).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered bytes that wake the writer before the interval is up.
pub const FLUSH_AT: usize = 64 * 1024;
/// Buffered bytes beyond which lines are dropped: a disk that stops costs at most twice
/// this (the buffer being written and the one filling), not more.
pub const BUFFER_CAP: usize = 16 * 1024 * 1024;

/// Counts `SIGUSR1`s; a writer that has seen fewer reopens its file before its next write.
static REOPENS: AtomicU64 = AtomicU64::new(0);

/// Asks every access-log writer to reopen its file (the `SIGUSR1` handler).
pub fn request_reopen() {
    REOPENS.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    /// Signalled when `pending` reaches [`FLUSH_AT`].
    full: Condvar,
    /// The file: the writer thread's, and a final flush's at shutdown.
    sink: Mutex<Sink>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side: cheap to call from any thread.
pub struct Writer {
    shared: Arc<Shared>,
    /// `meshgate_access_log_dropped_total`.
    dropped: IntCounter,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// Where lines go: a file reopened on request, or the process's standard output.
enum Sink {
    File { path: PathBuf, file: File },
    Stdout(io::Stdout),
}

impl Sink {
    fn open(path: &Path) -> io::Result<Sink> {
        if path == Path::new("/dev/stdout") {
            // Under systemd stdout is a socket to the journal, which cannot be opened by path.
            return Ok(Sink::Stdout(io::stdout()));
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Sink::File {
            path: path.to_path_buf(),
            file,
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::File { file, .. } => file.write_all(bytes),
            Sink::Stdout(out) => {
                let mut out = out.lock();
                out.write_all(bytes)?;
                out.flush()
            }
        }
    }

    /// Lets go of the file and opens the path again; on failure the old file is kept.
    fn reopen(&mut self) {
        if let Sink::File { path, file } = self {
            match OpenOptions::new().create(true).append(true).open(&*path) {
                Ok(f) => *file = f,
                Err(e) => log::warn!(
                    "access log: cannot reopen {}: {e}; writing to the old file",
                    path.display()
                ),
            }
        }
    }
}

impl Writer {
    /// Opens `path` (created if missing, appended to) and starts the thread that writes
    /// it. Fails at once when the file cannot be opened, so a bad path stops the start.
    pub fn open(path: &Path, dropped: IntCounter) -> io::Result<Writer> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(2 * FLUSH_AT)),
            full: Condvar::new(),
            sink: Mutex::new(Sink::open(path)?),
        });
        let for_thread = shared.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || drain(&for_thread))?;
        Ok(Writer { shared, dropped })
    }

    /// Appends one line; when the buffer is at its cap the line is dropped and counted.
    pub fn send(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        if pending.len() + line.len() > BUFFER_CAP {
            drop(pending);
            self.dropped.inc();
            return;
        }
        let before = pending.len();
        pending.extend_from_slice(line);
        let wake = before < FLUSH_AT && pending.len() >= FLUSH_AT;
        drop(pending);
        if wake {
            self.shared.full.notify_one();
        }
    }

    /// Writes what is pending now (at shutdown, so the last second's lines are not lost).
    pub fn flush(&self) {
        let pending = std::mem::take(&mut *self.shared.lock());
        write_out(&self.shared, &pending, &mut REOPENS.load(Ordering::Relaxed));
    }

    /// Lines dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

/// Every interval, or when woken by a full buffer, takes what is pending (swapping in an
/// empty buffer, so senders wait only for the swap) and writes it.
fn drain(shared: &Shared) {
    let mut out: Vec<u8> = Vec::with_capacity(2 * FLUSH_AT);
    let mut reopens_seen = REOPENS.load(Ordering::Relaxed);
    loop {
        {
            let mut pending = shared.lock();
            if pending.len() < FLUSH_AT {
                pending = shared
                    .full
                    .wait_timeout(pending, FLUSH_INTERVAL)
                    .map_or_else(|p| p.into_inner().0, |(g, _)| g);
            }
            std::mem::swap(&mut *pending, &mut out);
        }
        write_out(shared, &out, &mut reopens_seen);
        out.clear();
        // A burst's buffer is not kept around once the load is gone.
        out.shrink_to(2 * FLUSH_AT);
    }
}

/// Writes `bytes` to the sink, reopening it first if a `SIGUSR1` came since `seen`.
fn write_out(shared: &Shared, bytes: &[u8], seen: &mut u64) {
    let mut sink = shared.sink.lock().unwrap_or_else(|p| p.into_inner());
    let reopens = REOPENS.load(Ordering::Relaxed);
    if reopens != *seen {
        *seen = reopens;
        sink.reopen();
    }
    if !bytes.is_empty() {
        if let Err(e) = sink.write_all(bytes) {
            log::warn!("access log: write failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn counter() -> IntCounter {
        IntCounter::new("dropped", "dropped").unwrap()
    }

    fn wait_for(path: &Path, want: &str) -> String {
        let t = Instant::now();
        loop {
            let got = std::fs::read_to_string(path).unwrap_or_default();
            if got.contains(want) || t.elapsed() > Duration::from_secs(5) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn lines_reach_the_file_within_the_interval_and_reopen_follows_a_move() {
        let dir = std::env::temp_dir().join(format!("mg-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let w = Writer::open(&path, counter()).unwrap();
        let t = Instant::now();
        w.send(b"one\n");
        assert_eq!(wait_for(&path, "one\n"), "one\n");
        assert!(t.elapsed() < FLUSH_INTERVAL + Duration::from_millis(500));
        let moved = dir.join("access.log.1");
        std::fs::rename(&path, &moved).unwrap();
        w.send(b"two\n");
        assert_eq!(
            wait_for(&moved, "two\n"),
            "one\ntwo\n",
            "before the reopen: old file"
        );
        request_reopen();
        w.send(b"three\n");
        assert_eq!(
            wait_for(&path, "three\n"),
            "three\n",
            "after it: a new file"
        );
        assert_eq!(w.dropped(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_buffer_wakes_the_writer_and_a_stuck_one_drops_lines() {
        let dir = std::env::temp_dir().join(format!("mg-writer-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let w = Writer::open(&path, counter()).unwrap();
        let line = vec![b'x'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        let t = Instant::now();
        for _ in 0..(FLUSH_AT / line.len() + 1) {
            w.send(&line);
        }
        let t_len = std::fs::metadata(&path).map_or(0, |m| m.len());
        let got = loop {
            let n = std::fs::metadata(&path).map_or(0, |m| m.len());
            if n as usize >= FLUSH_AT || t.elapsed() > Duration::from_secs(3) {
                break n;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(got as usize >= FLUSH_AT, "{t_len} then {got}");
        assert!(
            t.elapsed() < FLUSH_INTERVAL,
            "64 KiB is written without waiting for the interval"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stuck_file_costs_at_most_the_cap_and_lines_beyond_it_are_dropped() {
        // A FIFO whose reader never reads: the writer blocks once the pipe is full.
        let dir = std::env::temp_dir().join(format!("mg-writer-stuck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("stuck");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let reader_path = fifo.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let held = File::open(reader_path).unwrap();
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(30));
            drop(held);
        });
        let w = Writer::open(&fifo, counter()).unwrap();
        rx.recv().unwrap();
        let big = vec![b'y'; 1024 * 1024];
        for _ in 0..(2 * BUFFER_CAP / big.len() + 4) {
            w.send(&big);
        }
        assert!(
            w.dropped() >= 4,
            "{} dropped, {} pending",
            w.dropped(),
            w.shared.lock().len()
        );
        assert!(w.shared.lock().len() <= BUFFER_CAP);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unopenable_path_is_an_error_at_once() {
        assert!(Writer::open(Path::new("/nonexistent-dir/x/access.log"), counter()).is_err());
    }
}

//! The access log's file, written off the request path: lines go into a bounded queue
//! that one thread drains into the file. When the queue is full the line is dropped and
//! counted; a request never waits on the disk. `SIGUSR1` reopens the file (logrotate's
//! `postrotate`), so a moved file is let go and a new one created at the configured path.

use prometheus::IntCounter;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};

/// Lines the queue holds before new ones are dropped: a burst of this many requests
/// is absorbed while the disk is slow.
pub const QUEUE_LINES: usize = 16 * 1024;

/// Set by `SIGUSR1`; every open writer reopens its file before its next write.
static REOPEN: AtomicBool = AtomicBool::new(false);

/// Asks every access-log writer to reopen its file (the `SIGUSR1` handler).
pub fn request_reopen() {
    REOPEN.store(true, Ordering::Relaxed);
}

/// The sending side: cheap to call from any thread.
pub struct Writer {
    tx: SyncSender<Vec<u8>>,
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
    File { path: PathBuf, out: BufWriter<File> },
    Stdout(BufWriter<io::Stdout>),
}

impl Sink {
    fn open(path: &Path) -> io::Result<Sink> {
        if path == Path::new("/dev/stdout") {
            // Under systemd stdout is a socket to the journal, which cannot be opened by path.
            return Ok(Sink::Stdout(BufWriter::new(io::stdout())));
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Sink::File {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, file),
        })
    }

    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::File { out, .. } => out,
            Sink::Stdout(out) => out,
        }
    }

    /// Lets go of the file and opens the path again; on failure the old file is kept.
    fn reopen(&mut self) {
        if let Sink::File { path, out } = self {
            let _ = out.flush();
            match OpenOptions::new().create(true).append(true).open(&*path) {
                Ok(f) => *out = BufWriter::with_capacity(64 * 1024, f),
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
        let sink = Sink::open(path)?;
        let (tx, rx) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || drain(rx, sink))?;
        Ok(Writer { tx, dropped })
    }

    /// Queues one line; when the queue is full the line is dropped and counted.
    pub fn send(&self, line: Vec<u8>) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

/// Writes lines as they come, flushing whenever the queue runs empty, so a line reaches
/// the file within one burst.
fn drain(rx: Receiver<Vec<u8>>, mut sink: Sink) {
    while let Ok(first) = rx.recv() {
        if REOPEN.swap(false, Ordering::Relaxed) {
            sink.reopen();
        }
        let mut line = Some(first);
        while let Some(l) = line.take() {
            if let Err(e) = sink.out().write_all(&l) {
                log::warn!("access log: write failed: {e}");
            }
            line = match rx.try_recv() {
                Ok(next) => Some(next),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
            };
        }
        if let Err(e) = sink.out().flush() {
            log::warn!("access log: write failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

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
    fn lines_reach_the_file_and_reopen_follows_a_move() {
        let dir = std::env::temp_dir().join(format!("mg-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let w = Writer::open(&path, counter()).unwrap();
        w.send(b"one\n".to_vec());
        assert_eq!(wait_for(&path, "one\n"), "one\n");
        let moved = dir.join("access.log.1");
        std::fs::rename(&path, &moved).unwrap();
        w.send(b"two\n".to_vec());
        assert_eq!(
            wait_for(&moved, "two\n"),
            "one\ntwo\n",
            "before the reopen: old file"
        );
        request_reopen();
        w.send(b"three\n".to_vec());
        assert_eq!(
            wait_for(&path, "three\n"),
            "three\n",
            "after it: a new file"
        );
        assert_eq!(w.dropped(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unopenable_path_is_an_error_at_once() {
        assert!(Writer::open(Path::new("/nonexistent-dir/x/access.log"), counter()).is_err());
    }
}

//! Helpers shared by the integration tests: the real `meshgate` binary, the Istio corpus
//! in `../shared/istio-corpus`, and scratch directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The Istio corpus shipped beside the project (CI clones it there too).
pub fn corpus() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/istio-corpus");
    assert!(p.is_dir(), "the Istio corpus is missing at {}", p.display());
    p
}

/// Runs the real binary with `args`.
pub fn meshgate<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(args)
        .output()
        .expect("run meshgate")
}

/// `meshgate validate --config PATH...` → (exit code, stderr, stdout).
pub fn validate(paths: &[&Path], extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<std::ffi::OsString> = vec!["validate".into()];
    for p in paths {
        args.push("--config".into());
        args.push(p.as_os_str().to_owned());
    }
    args.extend(extra.iter().map(|s| s.into()));
    let out = meshgate(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    // Under Cargo's per-target scratch space, not /tmp: `cargo clean` removes them.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "meshgate-test-{}-{}-{}",
        std::process::id(),
        name,
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// Every `*.yaml` file below `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The error lines (not warnings or notices) of a validate run's stderr.
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            !l.starts_with("meshgate:") && !l.contains(": warning: ") && !l.contains(": notice: ")
        })
        .collect()
}

/// The warning lines of a validate run's stderr.
pub fn warning_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(": warning: "))
        .collect()
}
pub mod config;
pub mod h2c;
pub mod net;
pub mod peers;
pub mod pki;

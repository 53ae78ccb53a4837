//! The benchmark matrix users rerun (`bench/matrix.sh`), short and end to end: nginx,
//! HAProxy, the stock Pingora proxy and meshgate each serve the keep-alive, TLS keep-alive,
//! resumed-handshake, HTTP/2 and idle-memory cells (the tokio floor the plain keep-alive and
//! idle-RSS ones), and the table comes out with every figure and no flag (a non-2xx answer, a socket error, a handshake that did not resume, a
//! proxy that did not start). The figures of these debug builds mean nothing; the full run
//! is the README's command. The script installs what it drives (wrk, nginx, HAProxy,
//! h2load, the OpenSSL headers for its TLS client) with apt-get when missing.

use std::path::Path;
use std::process::Command;

#[test]
fn the_benchmark_matrix_runs_every_contender_without_a_flag() {
    let meshgate = env!("CARGO_BIN_EXE_meshgate");
    // `cargo test` builds the examples beside the binaries.
    let bare = Path::new(meshgate)
        .parent()
        .unwrap()
        .join("examples/bare_pingora");
    let floor = bare.with_file_name("tokio_floor");
    for example in [&bare, &floor] {
        assert!(
            example.exists(),
            "{} is built by `cargo test` (an example; `cargo build --examples` first when this test runs alone)",
            example.display()
        );
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/matrix.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("QUICK", "1")
        .env("SCALE", "0")
        .env("CELLS", "tiny tls tls13-resume h2 idle")
        .env("MESHGATE", meshgate)
        .env("PINGORA_BIN", &bare)
        .env("FLOOR_BIN", &floor)
        .env(
            "RESULTS",
            std::env::temp_dir().join("meshgate-matrix-test.txt"),
        )
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| cell | nginx | haproxy | pingora | floor | meshgate |"),
        "{stdout}"
    );
    // Every contender has a figure on the keep-alive row; the TLS rows have one for each
    // TLS-capable contender (the stock proxy and the floor have no TLS: "–"), the idle row
    // one for each but the floor (no upstream pool: an upstream connection per client).
    let row = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row {prefix}:\n{stdout}"))
            .to_string()
    };
    let tiny = row("| tiny body");
    assert_eq!(tiny.matches("µs/req").count(), 5, "{tiny}");
    let tls = row("| TLS keep-alive");
    assert_eq!(tls.matches("µs/req").count(), 3, "{tls}");
    assert_eq!(tls.matches("TLSv1.3").count(), 3, "{tls}");
    let resumed = row("| new TLS 1.3 conns, RESUMED");
    assert_eq!(resumed.matches("100% resumed").count(), 3, "{resumed}");
    let idle = row("| RSS per idle keep-alive conn");
    assert_eq!(idle.matches("KiB/conn").count(), 4, "{idle}");
    assert!(
        stdout.contains("No flags"),
        "the matrix flagged something:\n{stdout}"
    );
}

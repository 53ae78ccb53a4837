//! Running meshgate as a service (issue #14): the .deb that `packaging/build-deb.sh` makes
//! (cargo-deb, from `[package.metadata.deb]`), its maintainer scripts, the systemd unit,
//! `certs/make-certs.sh`, and the shipped example config (`conf/`, the package's
//! `/etc/meshgate`) answering on its own.
//!
//! The .deb is built once per run with `cargo deb` (a release build into ./target, so
//! only what changed is rebuilt; `--fast` compression, no separate -dbgsym package) into
//! a scratch directory, then read with `dpkg-deb` and extracted; the tests run the
//! extracted binary and scripts. `systemd-analyze` and `strace` (installed by
//! tests/setup.sh) check the unit and its sandbox; without them those checks are skipped
//! with a notice on stderr.

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under Cargo's per-target scratch space.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("packaging-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn show(cmd: &Command) -> String {
    format!("{cmd:?}")
}

/// Runs `cmd`; panics with its output unless it succeeds; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", show(cmd)));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}\n{}",
        show(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Replaces `from` by `to` in `file`, asserting it occurs (a test must not silently stop
/// changing what it thinks it changes).
fn replace_in(file: &Path, from: &str, to: &str) {
    let text = read(file);
    assert!(
        text.contains(from),
        "{} no longer contains {from:?}",
        file.display()
    );
    fs::write(file, text.replace(from, to)).unwrap();
}

/// Removes the comment marker of every line between `# >>> NAME` and `# <<< NAME`, as
/// conf/gateway.yaml tells a user to do.
fn uncomment(file: &Path, name: &str) {
    let text = read(file);
    let (open, close) = (format!("# >>> {name}"), format!("# <<< {name}"));
    let mut inside = false;
    let mut seen = false;
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t == open {
            inside = true;
            seen = true;
        } else if t == close {
            inside = false;
        } else if inside {
            let i = line.find('#').expect("a commented example line");
            let rest = &line[i + 1..];
            out.push_str(&line[..i]);
            out.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        seen && !inside,
        "{}: no closed block {name}",
        file.display()
    );
    fs::write(file, out).unwrap();
}

/// The `>>> NAME` blocks of a file.
fn blocks(file: &Path) -> Vec<String> {
    read(file)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# >>> "))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The package

struct Deb {
    path: PathBuf,
    /// `dpkg-deb -c`: (mode, path without the leading `.`).
    listing: Vec<(String, String)>,
    /// `dpkg-deb -x`.
    root: PathBuf,
    /// `dpkg-deb -e`.
    control: PathBuf,
}

impl Deb {
    fn entry(&self, path: &str) -> Option<&str> {
        self.listing
            .iter()
            .find(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
    }

    /// Where the unit is: cargo-deb installs it in /usr/lib/systemd/system (the same
    /// directory as /lib/systemd/system on a merged-/usr Debian).
    fn unit(&self) -> PathBuf {
        [
            "/usr/lib/systemd/system/meshgate.service",
            "/lib/systemd/system/meshgate.service",
        ]
        .iter()
        .find(|p| self.entry(p).is_some())
        .map(|p| self.root.join(&p[1..]))
        .expect("the package holds meshgate.service")
    }

    fn bin(&self) -> PathBuf {
        self.root.join("usr/bin/meshgate")
    }
}

fn deb() -> &'static Deb {
    static DEB: OnceLock<Result<Deb, String>> = OnceLock::new();
    match DEB.get_or_init(build_deb) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

fn build_deb() -> Result<Deb, String> {
    let out_dir = scratch("deb");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let out = Command::new(&cargo)
        .current_dir(repo())
        .args(["deb", "--locked", "--fast", "--no-dbgsym", "--strip", "-o"])
        .arg(&out_dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo deb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo deb` failed ({}); is cargo-deb installed? (./tests/setup.sh installs it)",
            out.status
        ));
    }
    eprintln!("packaging: cargo deb took {:?}", started.elapsed());
    let path = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or("cargo deb made no .deb")?;
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&path))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6).then(|| (f[0].to_string(), f[5].trim_start_matches('.').to_string()))
        })
        .collect();
    let root = out_dir.join("root");
    let control = out_dir.join("control");
    ok(Command::new("dpkg-deb").arg("-x").arg(&path).arg(&root));
    ok(Command::new("dpkg-deb").arg("-e").arg(&path).arg(&control));
    Ok(Deb {
        path,
        listing,
        root,
        control,
    })
}

#[test]
fn deb_holds_the_binary_unit_config_and_logrotate_snippet() {
    let d = deb();
    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&d.path));
    assert!(info.contains(" Package: meshgate\n"), "{info}");
    let depends = info
        .lines()
        .find(|l| l.starts_with(" Depends: "))
        .unwrap_or_else(|| panic!("no Depends:\n{info}"));
    assert!(depends.contains("adduser"), "{depends}");

    assert_eq!(
        d.entry("/usr/bin/meshgate"),
        Some("-rwxr-xr-x"),
        "{:?}",
        d.listing
    );
    let version = ok(Command::new(d.bin()).arg("version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    // Installed files are the repository's, byte for byte.
    let same = |installed: &Path, source: &str| {
        assert_eq!(read(installed), read(&repo().join(source)), "{source}");
    };
    same(&d.unit(), "systemd/meshgate.service");
    for f in ["meshgate.yaml", "gateway.yaml"] {
        let p = format!("/etc/meshgate/{f}");
        assert_eq!(d.entry(&p), Some("-rw-r--r--"), "{p}");
        same(&d.root.join(&p[1..]), &format!("conf/{f}"));
    }
    // bookinfo would forward paths to 127.0.0.1:9080-9082 on a real machine: a document only.
    assert_eq!(d.entry("/etc/meshgate/bookinfo.yaml"), None);
    same(
        &d.root.join("usr/share/doc/meshgate/examples/bookinfo.yaml"),
        "conf/bookinfo.yaml",
    );
    same(
        &d.root.join("etc/logrotate.d/meshgate"),
        "packaging/logrotate",
    );
    let logrotate = read(&d.root.join("etc/logrotate.d/meshgate"));
    assert!(
        logrotate.contains("/var/log/meshgate/access.log {"),
        "{logrotate}"
    );
    assert!(logrotate.contains("USR1"), "{logrotate}");
    assert_eq!(
        d.entry("/usr/share/meshgate/make-certs.sh"),
        Some("-rwxr-xr-x")
    );
    // What a user opens first.
    for doc in [
        "README.md",
        "README.systemd.md",
        "README.packaging.md",
        "README.certs.md",
    ] {
        assert!(
            d.entry(&format!("/usr/share/doc/meshgate/{doc}")).is_some(),
            "{doc}"
        );
    }
}

#[test]
fn conffiles_are_the_etc_files_so_upgrades_keep_edits() {
    let d = deb();
    let conffiles: BTreeSet<String> = read(&d.control.join("conffiles"))
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let want: BTreeSet<String> = [
        "/etc/logrotate.d/meshgate",
        "/etc/meshgate/gateway.yaml",
        "/etc/meshgate/meshgate.yaml",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(conffiles, want);
    // Every file the package puts under /etc is a conffile.
    for (mode, p) in &d.listing {
        if p.starts_with("/etc/") && mode.starts_with('-') {
            assert!(conffiles.contains(p), "{p} is not a conffile");
        }
    }
}

#[test]
fn maintainer_scripts_create_the_user_and_validate_before_restarting() {
    let d = deb();
    for s in ["postinst", "prerm", "postrm"] {
        let p = d.control.join(s);
        assert!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o111 != 0,
            "{s} is not executable"
        );
        ok(Command::new("sh").arg("-n").arg(&p));
    }
    let postinst = read(&d.control.join("postinst"));
    for needle in [
        "adduser --system",
        "--no-create-home",
        "deb-systemd-helper enable meshgate.service",
    ] {
        assert!(postinst.contains(needle), "postinst lacks {needle:?}");
    }
    let validate = postinst
        .find("/usr/bin/meshgate validate --config /etc/meshgate")
        .expect("postinst validates");
    assert!(
        postinst.contains("runuser -u meshgate -- /usr/bin/meshgate validate"),
        "postinst validates as the service's user"
    );
    let restart = postinst
        .find("try-restart meshgate.service")
        .expect("postinst restarts");
    assert!(validate < restart, "validate comes after the restart");
    // cargo-deb's systemd section: stop on removal only (an upgrade keeps the old process
    // until postinst has validated), mask on remove, forget on purge.
    let prerm = read(&d.control.join("prerm"));
    assert!(
        prerm.contains("\"$1\" = remove")
            && prerm.contains("deb-systemd-invoke stop meshgate.service"),
        "{prerm}"
    );
    let postrm = read(&d.control.join("postrm"));
    assert!(
        postrm.contains("deb-systemd-helper purge meshgate.service"),
        "{postrm}"
    );
    assert!(
        postrm.contains("deb-systemd-helper mask meshgate.service"),
        "{postrm}"
    );
}

/// The postinst, run for real with its system paths moved into a scratch directory and
/// the system tools it calls (adduser, deb-systemd-invoke, systemctl, ...) replaced by
/// stubs that record their arguments.
struct Postinst {
    dir: PathBuf,
    script: PathBuf,
    etc: PathBuf,
    stubs: PathBuf,
    log: PathBuf,
}

impl Postinst {
    fn new(name: &str) -> Postinst {
        let d = deb();
        let dir = scratch(name);
        let etc = dir.join("etc-meshgate");
        copy_dir(&d.root.join("etc/meshgate"), &etc);
        let run_systemd = dir.join("run-systemd-system");
        fs::create_dir_all(&run_systemd).unwrap();
        let stubs = dir.join("stubs");
        fs::create_dir_all(&stubs).unwrap();
        let log = dir.join("calls.log");
        for tool in [
            "getent",
            "addgroup",
            "adduser",
            "install",
            "deb-systemd-helper",
            "deb-systemd-invoke",
            "systemctl",
            "runuser",
        ] {
            let p = stubs.join(tool);
            // getent answers as if the user exists when STUB_USER_EXISTS=1; runuser runs
            // the command after `--` (as this user).
            let exit = match tool {
                "getent" => "[ \"$STUB_USER_EXISTS\" = 1 ]",
                "runuser" => "while [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"",
                _ => "exit 0",
            };
            fs::write(
                &p,
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >> '{}'\n{exit}\n",
                    log.display()
                ),
            )
            .unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut text = read(&d.control.join("postinst"));
        for (from, to) in [
            ("/usr/bin/meshgate", d.bin()),
            ("/etc/meshgate", etc.clone()),
            ("/run/systemd/system", run_systemd),
        ] {
            assert!(text.contains(from), "postinst no longer names {from}");
            text = text.replace(from, to.to_str().unwrap());
        }
        let script = dir.join("postinst");
        fs::write(&script, text).unwrap();
        Postinst {
            dir,
            script,
            etc,
            stubs,
            log,
        }
    }

    /// Runs `postinst ARGS`; (exit code, stderr, calls made).
    fn run(&self, args: &[&str], user_exists: bool) -> (i32, String, Vec<String>) {
        let _ = fs::remove_file(&self.log);
        let path = format!(
            "{}:{}",
            self.stubs.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(&self.script)
            .args(args)
            .current_dir(&self.dir)
            .env("PATH", path)
            .env("STUB_USER_EXISTS", if user_exists { "1" } else { "0" })
            .output()
            .unwrap();
        let calls = fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            calls,
        )
    }
}

#[test]
fn postinst_creates_the_user_and_starts_on_first_install() {
    let p = Postinst::new("postinst-install");
    let (code, stderr, calls) = p.run(&["configure"], false);
    assert_eq!(code, 0, "{stderr}");
    let has = |c: &str| calls.iter().any(|l| l.starts_with(c));
    assert!(has("addgroup --system"), "{calls:#?}");
    assert!(
        calls
            .iter()
            .any(|l| l.starts_with("adduser --system") && l.ends_with(" meshgate")),
        "{calls:#?}"
    );
    assert!(
        has("deb-systemd-helper enable meshgate.service"),
        "{calls:#?}"
    );
    assert!(
        has("deb-systemd-invoke start meshgate.service"),
        "{calls:#?}"
    );
    assert!(!has("deb-systemd-invoke try-restart"), "{calls:#?}");

    // Idempotent: a second configure (the user exists) creates nothing.
    let (code, stderr, calls) = p.run(&["configure"], true);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !calls
            .iter()
            .any(|l| l.starts_with("adduser") || l.starts_with("addgroup")),
        "{calls:#?}"
    );
}

#[test]
fn postinst_restarts_on_upgrade_only_when_the_config_validates() {
    let p = Postinst::new("postinst-upgrade");
    let (code, stderr, calls) = p.run(&["configure", "0.0.9-1"], true);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        calls
            .iter()
            .any(|l| l == "systemctl kill --kill-who=main --signal=USR2 meshgate.service"),
        "valid config, no in-place upgrade: {calls:#?}\n{stderr}"
    );
    assert!(
        !calls.iter().any(|l| l.contains("try-restart")),
        "the hand-over worked, no restart: {calls:#?}"
    );
    assert!(!calls.iter().any(|l| l.contains(" start ")), "{calls:#?}");

    // An edited config the new binary refuses: no restart (the running process keeps the
    // previous version and config), the reason printed, the upgrade itself not failed.
    fs::write(
        p.etc.join("zz-broken.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken}\nspec:\n  hosts: [a.example.com]\n  gateways: [meshgate]\n  http:\n  - route:\n    - destination: {host: a.internal}\n      weight: -5\n",
    )
    .unwrap();
    let (code, stderr, calls) = p.run(&["configure", "0.0.9-1"], true);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !calls.iter().any(|l| l.starts_with("deb-systemd-invoke")
            || l.contains("restart")
            || l.contains(" stop ")),
        "restarted on a refused config: {calls:#?}"
    );
    assert!(stderr.contains("NOT restarted"), "{stderr}");
    assert!(
        stderr.contains("zz-broken.yaml"),
        "the reason is not shown:\n{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// The systemd unit

/// `Key=value` settings of the unit (every occurrence, in order).
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn unit_runs_as_notify_service_with_the_sandbox_the_issue_asks_for() {
    let text = read(&repo().join("systemd/meshgate.service"));
    let settings = unit_settings(&text);
    let get = |k: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (k, v) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        (
            "ExecStartPre",
            "/usr/bin/meshgate validate --config /etc/meshgate --quiet",
        ),
        ("ExecStart", "/usr/bin/meshgate run --config /etc/meshgate"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
        ("User", "meshgate"),
        ("Group", "meshgate"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ReadOnlyPaths", "/etc/meshgate"),
        ("LogsDirectory", "meshgate"),
        ("LimitNOFILE", "1048576"),
        ("Restart", "on-failure"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert!(
            get(k).contains(&v),
            "{k}={v} missing; the unit has {k}={:?}",
            get(k)
        );
    }
    // Stop waits for the drain: MeshConfig drainDuration (5 s) + terminationDrainDuration
    // (30 s), with room for the exit.
    let stop: u64 = get("TimeoutStopSec")
        .first()
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > 35,
        "TimeoutStopSec={stop} does not cover the 35 s drain"
    );
}

/// Expands a systemd syscall group (`@system-service`) to system call names.
fn syscall_group(group: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![group.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(g) = todo.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        let text = ok(Command::new("systemd-analyze").args(["syscall-filter", &g]));
        for line in text.lines().skip(1) {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if t.starts_with('@') {
                todo.push(t.to_string());
            } else {
                out.insert(t.to_string());
            }
        }
    }
    out
}

#[test]
fn unit_passes_systemd_analyze_verify_and_security() {
    if !have("systemd-analyze") {
        eprintln!("packaging: SKIPPED systemd-analyze checks: systemd-analyze is not installed (tests/setup.sh installs it)");
        return;
    }
    let d = deb();
    // `verify` checks that the commands exist: a copy of the packaged unit whose
    // /usr/bin/meshgate is the packaged binary extracted here (/bin/kill is the system's).
    let dir = scratch("verify");
    let unit = dir.join("meshgate.service");
    let bin = d.bin();
    let text = read(&d.unit());
    fs::write(
        &unit,
        text.replace("/usr/bin/meshgate", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify:\n{stderr}");
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("meshgate")).collect();
    assert!(ours.is_empty(), "systemd-analyze verify:\n{stderr}");

    // The hardening score (systemd/README.md says what it was when measured).
    let version = ok(Command::new("systemd-analyze").arg("--version"));
    let v: u32 = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if v < 250 {
        eprintln!("packaging: SKIPPED the exposure score: systemd {v} has no `security --offline`");
        return;
    }
    let out = ok(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit));
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score:\n{out}"));
    let score: f64 = line
        .rsplit(':')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    eprintln!("packaging: {}", line.trim());
    assert!(score <= 1.5, "the unit's exposure rose: {line}\n{out}");
}

// ---------------------------------------------------------------------------------------
// certs/make-certs.sh

#[test]
fn make_certs_makes_a_ca_and_credentials_openssl_verifies() {
    let dir = scratch("certs").join("creds");
    let script = repo().join("certs/make-certs.sh");
    let printed = ok(Command::new(&script).arg(&dir).arg("gw.example.com"));
    assert_eq!(printed.trim(), dir.to_str().unwrap());
    let p = |s: &str| dir.join(s);
    for (cert, purpose) in [
        ("example/tls.crt", "sslserver"),
        ("client/tls.crt", "sslclient"),
    ] {
        let out = ok(Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(p("ca/ca.crt"))
            .arg(p(cert)));
        assert!(out.contains(": OK"), "{cert}: {out}");
    }
    // Each credential carries the CA: MUTUAL servers verify clients with example/ca.crt,
    // curl verifies the server with client/ca.crt.
    for ca in ["example/ca.crt", "client/ca.crt"] {
        assert_eq!(read(&p(ca)), read(&p("ca/ca.crt")), "{ca}");
    }
    let text = ok(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(p("example/tls.crt")));
    for san in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "DNS:gw.example.com",
    ] {
        assert!(
            text.contains(san),
            "server certificate lacks {san}:\n{text}"
        );
    }
    // Directories stay listable: meshgate reads its config directory recursively, and the
    // shipped credentialsDir (conf/certs, /etc/meshgate/certs) is inside it.
    for sub in ["", "ca", "example", "client"] {
        let mode = fs::metadata(p(sub)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o005, 0o005, "{sub}/ is {mode:o}");
    }
    // Keys are the owner's only (meshgate warns PrivateKeyReadable otherwise).
    for key in ["ca/ca.key", "example/tls.key", "client/tls.key"] {
        let mode = fs::metadata(p(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    // A second run keeps the CA (clients keep trusting it) and issues new leaves.
    let ca = read(&p("ca/ca.crt"));
    let leaf = read(&p("example/tls.crt"));
    ok(Command::new(&script).arg(&dir));
    assert_eq!(read(&p("ca/ca.crt")), ca);
    assert_ne!(read(&p("example/tls.crt")), leaf);
    ok(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(p("ca/ca.crt"))
        .arg(p("example/tls.crt")));
}

// ---------------------------------------------------------------------------------------
// The shipped config, served

/// A running `meshgate run`, killed when dropped.
struct Running {
    child: Child,
    log: PathBuf,
    admin: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `cmd` (a `meshgate run`, maybe under strace) and waits for `/ready`.
    fn start(mut cmd: Command, log: PathBuf, admin: u16) -> Running {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", show(&cmd)));
        let mut r = Running { child, log, admin };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if r.admin_status("/ready") == "200" {
                return r;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("meshgate exited ({status}) before ready:\n{}", r.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 30 s:\n{}",
                r.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The status of `GET path` on the admin listener ("000" when it does not answer).
    fn admin_status(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.admin);
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                &url,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `curl ARGS -i`: (exit code, head and body).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (tests/setup.sh installs it)");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Asserts `reply` is the welcome page.
fn assert_welcome(reply: &(i32, String)) {
    let (code, text) = reply;
    assert_eq!(*code, 0, "{text}");
    let status = text.lines().next().unwrap_or_default();
    assert!(status.contains(" 200"), "not 200:\n{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{text}"
    );
    assert!(text.contains("meshgate is running."), "{text}");
    assert!(text.contains("/etc/meshgate"), "{text}");
}

/// A copy of a config directory on free ports: (dir, http port, admin port).
fn on_free_ports(from: &Path, name: &str) -> (PathBuf, u16, u16) {
    let dir = scratch(name).join("conf");
    copy_dir(from, &dir);
    let (http, admin) = (free_port(), free_port());
    replace_in(
        &dir.join("gateway.yaml"),
        "number: 8080",
        &format!("number: {http}"),
    );
    replace_in(
        &dir.join("meshgate.yaml"),
        "adminAddress: 127.0.0.1:15000",
        &format!("adminAddress: 127.0.0.1:{admin}"),
    );
    (dir, http, admin)
}

fn validate_strict(bin: &Path, conf: &Path) {
    let out: Output = Command::new(bin)
        .args(["validate", "--strict", "--config"])
        .arg(conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}:\n{stderr}", conf.display());
    assert!(stderr.contains(" 0 warning(s)"), "{stderr}");
}

/// README's first command, `meshgate run --config conf/`, on the checkout's conf/ (copied,
/// on free ports): the welcome page at `/` (`/index.html` redirected there, other paths
/// 404), bookinfo's paths to its (absent) upstreams.
#[test]
fn shipped_conf_answers_with_the_welcome_page() {
    let bin = Path::new(env!("CARGO_BIN_EXE_meshgate"));
    validate_strict(bin, &repo().join("conf"));
    let (conf, http, admin) = on_free_ports(&repo().join("conf"), "welcome");
    validate_strict(bin, &conf);
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--config"]).arg(&conf);
    let _gw = Running::start(cmd, conf.with_file_name("meshgate.log"), admin);
    for path in ["/", "/?x=1"] {
        assert_welcome(&curl(&[&format!("http://127.0.0.1:{http}{path}")]));
    }
    // As nginx's welcome page: /index.html leads to it, other paths are not found.
    let (_, text) = curl(&[&format!("http://127.0.0.1:{http}/index.html")]);
    assert!(
        text.starts_with("HTTP/1.1 301")
            && text
                .to_ascii_lowercase()
                .contains(&format!("location: http://127.0.0.1:{http}/\r")),
        "{text}"
    );
    let (_, text) = curl(&[&format!("http://127.0.0.1:{http}/anything/else?x=1")]);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    assert_welcome(&curl(&[
        "-H",
        "Host: www.example.com",
        &format!("http://127.0.0.1:{http}/"),
    ]));
    let (_, text) = curl(&[&format!("http://127.0.0.1:{http}/productpage")]);
    assert!(
        text.starts_with("HTTP/1.1 503") && text.contains("upstream connect error"),
        "{text}"
    );
}

/// Every commented example of the shipped config is valid once uncommented (with the
/// credentials make-certs.sh makes for the HTTPS one).
#[test]
fn commented_examples_in_conf_are_valid() {
    let bin = Path::new(env!("CARGO_BIN_EXE_meshgate"));
    let dir = scratch("examples").join("conf");
    copy_dir(&repo().join("conf"), &dir);
    let _ = fs::remove_dir_all(dir.join("certs"));
    ok(Command::new(repo().join("certs/make-certs.sh")).arg(dir.join("certs")));
    let mut n = 0;
    for f in ["gateway.yaml", "meshgate.yaml", "bookinfo.yaml"] {
        for b in blocks(&dir.join(f)) {
            uncomment(&dir.join(f), &b);
            n += 1;
        }
    }
    assert!(n >= 3, "only {n} example blocks");
    validate_strict(bin, &dir);
}

/// Parses strace lines: (system call names, socket address families, mappings that are
/// writable and executable or made executable later).
fn strace_summary(trace: &str) -> (BTreeSet<String>, BTreeSet<String>, Vec<String>) {
    let mut calls = BTreeSet::new();
    let mut families = BTreeSet::new();
    let mut wx = Vec::new();
    for line in trace.lines() {
        // "PID name(args) = ret", "PID <... name resumed>...", "PID --- SIG...", "PID +++ ..."
        let rest = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let rest = rest.strip_prefix("<... ").unwrap_or(rest);
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[name.len()..];
        if name.is_empty() || !(after.starts_with('(') || after.starts_with(" resumed")) {
            continue;
        }
        if (name == "socket" || name == "socketpair") && after.starts_with('(') {
            if let Some(f) = after[1..].split([',', ')']).next() {
                families.insert(f.trim().to_string());
            }
        }
        let exec = line.contains("PROT_EXEC");
        if (name == "mmap" && exec && line.contains("PROT_WRITE"))
            || ((name == "mprotect" || name == "pkey_mprotect") && exec)
        {
            wx.push(line.to_string());
        }
        calls.insert(name);
    }
    (calls, families, wx)
}

/// Reads sd_notify datagrams until one carries `state` (a line of it); panics on timeout.
fn wait_notify(sock: &UnixDatagram, state: &str) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.lines().any(|l| l == state) {
                    return;
                }
                seen.push(msg);
            }
            // A signal to this thread (another test's child exiting) is not a timeout.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("no sd_notify {state} ({e}); got {seen:?}"),
        }
    }
}

fn strace_works() -> bool {
    have("strace")
        && Command::new("strace")
            .args(["-f", "-o", "/dev/null", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The package as installed: its /etc/meshgate with the HTTPS example switched on and the
/// credentials of its make-certs.sh, served by its binary. The curl commands of
/// certs/README.md (ports changed) get the welcome page over SIMPLE and MUTUAL TLS. Under
/// strace, the binary's system calls stay inside the unit's SystemCallFilter,
/// RestrictAddressFamilies and MemoryDenyWriteExecute.
#[test]
fn packaged_config_serves_tls_with_make_certs_inside_the_unit_sandbox() {
    let d = deb();
    let (conf, http, admin) = on_free_ports(&d.root.join("etc/meshgate"), "tls");
    let gateway = conf.join("gateway.yaml");
    uncomment(&gateway, "https");
    let (simple, mutual) = (free_port(), free_port());
    replace_in(&gateway, "number: 8443", &format!("number: {simple}"));
    replace_in(&gateway, "number: 8444", &format!("number: {mutual}"));
    // The access log, as an operator would switch it on (reopened on SIGUSR1 below).
    let access_log = conf.with_file_name("access.log");
    replace_in(
        &conf.join("meshgate.yaml"),
        "# accessLogFile: /var/log/meshgate/access.log",
        &format!("accessLogFile: {}", access_log.display()),
    );
    // A DNS-resolved upstream: name resolution happens inside the sandbox too.
    fs::write(
        conf.join("dns.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: app}\nspec:\n  hosts: [app.example.com]\n  gateways: [meshgate]\n  http:\n  - route:\n    - destination: {host: app.internal}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: app}\nspec:\n  hosts: [app.internal]\n  location: MESH_INTERNAL\n  ports: [{number: 1, name: http, protocol: HTTP}]\n  resolution: DNS\n  endpoints: [{address: localhost}]\n",
    )
    .unwrap();
    let certs = conf.join("certs");
    let printed = ok(Command::new(d.root.join("usr/share/meshgate/make-certs.sh")).arg(&certs));
    assert_eq!(printed.trim(), certs.to_str().unwrap());
    validate_strict(&d.bin(), &conf);

    let traced = strace_works();
    let trace = conf.with_file_name("strace.txt");
    let mut cmd;
    if traced {
        cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-s", "0", "-o"])
            .arg(&trace)
            .arg(d.bin());
    } else {
        eprintln!(
            "packaging: SKIPPED the system call checks: strace is missing or cannot trace here"
        );
        cmd = Command::new(d.bin());
    }
    cmd.args(["run", "--config"]).arg(&conf);
    // systemd's side of Type=notify: the datagram socket named by NOTIFY_SOCKET.
    let notify_path = conf.with_file_name("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    cmd.env("NOTIFY_SOCKET", &notify_path);
    let mut gw = Running::start(cmd, conf.with_file_name("meshgate.log"), admin);
    wait_notify(&notify, "READY=1");

    let c = |s: &str| certs.join(s).to_str().unwrap().to_string();
    let resolve = |port: u16| format!("localhost:{port}:127.0.0.1");
    assert_welcome(&curl(&[&format!("http://127.0.0.1:{http}/")]));
    // certs/README.md: curl --cacert certs/client/ca.crt https://localhost:8443/
    assert_welcome(&curl(&[
        "--resolve",
        &resolve(simple),
        "--cacert",
        &c("client/ca.crt"),
        &format!("https://localhost:{simple}/"),
    ]));
    // certs/README.md: ... --cert certs/client/tls.crt --key certs/client/tls.key https://localhost:8444/
    assert_welcome(&curl(&[
        "--resolve",
        &resolve(mutual),
        "--cacert",
        &c("client/ca.crt"),
        "--cert",
        &c("client/tls.crt"),
        "--key",
        &c("client/tls.key"),
        &format!("https://localhost:{mutual}/"),
    ]));
    // MUTUAL without a client certificate: no page.
    let (code, text) = curl(&[
        "--resolve",
        &resolve(mutual),
        "--cacert",
        &c("client/ca.crt"),
        &format!("https://localhost:{mutual}/"),
    ]);
    assert!(code != 0 && !text.contains("meshgate is running"), "{text}");
    let (_, text) = curl(&[
        "-H",
        "Host: app.example.com",
        &format!("http://127.0.0.1:{http}/"),
    ]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    for path in ["/stats/prometheus", "/config_dump"] {
        assert_eq!(gw.admin_status(path), "200", "{path}");
    }

    // logrotate's postrotate, a reload (the unit's ExecReload), then SIGTERM (KillSignal).
    let pid = if traced {
        // The first line of the trace is the traced binary's execve.
        read(&trace)
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .expect("pid in the trace")
    } else {
        gw.child.id()
    };
    let rotated = conf.with_file_name("access.log.1");
    fs::rename(&access_log, &rotated).unwrap();
    ok(Command::new("kill").args(["-USR1", &pid.to_string()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.log_text().contains("SIGUSR1") {
        assert!(
            Instant::now() < deadline,
            "SIGUSR1 not handled:\n{}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_welcome(&curl(&[&format!(
        "http://127.0.0.1:{http}/?after-rotation"
    )]));

    ok(Command::new("kill").args(["-HUP", &pid.to_string()]));
    wait_notify(&notify, "RELOADING=1");
    wait_notify(&notify, "READY=1");
    assert_welcome(&curl(&[&format!("http://127.0.0.1:{http}/?after-reload")]));

    ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
    wait_notify(&notify, "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(45);
    while gw.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = gw.child.try_wait().unwrap();
    assert!(
        status.is_some(),
        "still running 45 s after SIGTERM (TimeoutStopSec would SIGKILL it)"
    );
    // Under strace the exit status is strace's, which passes the binary's on.
    assert!(
        status.unwrap().success(),
        "{:?}:\n{}",
        status,
        gw.log_text()
    );
    // Every request is logged once, in the moved file or the reopened one (lines still
    // buffered at the move go to the new file); those after the reopen in the new one.
    let before = read(&rotated);
    let after = fs::read_to_string(&access_log).unwrap_or_default();
    let all = format!("{before}{after}");
    assert_eq!(all.matches("\"GET / HTTP/").count(), 4, "{all}");
    assert!(
        after.contains("/?after-rotation") && after.contains("/?after-reload"),
        "access.log after SIGUSR1:\n{after}"
    );

    if !traced {
        return;
    }
    let (calls, families, wx) = strace_summary(&read(&trace));
    assert!(calls.len() > 20, "trace not parsed: {calls:?}");
    assert!(
        wx.is_empty(),
        "MemoryDenyWriteExecute=yes would refuse:\n{}",
        wx.join("\n")
    );
    let allowed: BTreeSet<&str> = ["AF_INET", "AF_INET6", "AF_UNIX"].into();
    let outside: Vec<&String> = families
        .iter()
        .filter(|f| !allowed.contains(f.as_str()))
        .collect();
    assert!(
        outside.is_empty(),
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX would refuse {outside:?}"
    );
    if !have("systemd-analyze") {
        eprintln!("packaging: SKIPPED the SystemCallFilter check: no systemd-analyze");
        return;
    }
    let filter = syscall_group("@system-service");
    let denied: BTreeSet<String> = syscall_group("@privileged")
        .union(&syscall_group("@resources"))
        .cloned()
        .collect();
    let refused: Vec<&String> = calls
        .iter()
        .filter(|c| !filter.contains(*c) || denied.contains(*c))
        .collect();
    assert!(
        refused.is_empty(),
        "SystemCallFilter=@system-service ~@privileged @resources would refuse {refused:?}"
    );
    eprintln!(
        "packaging: {} system calls, all inside the unit's filter; socket families {families:?}",
        calls.len()
    );
}

//! Config at scale and hostile config: YAML alias bombs and oversized files are refused
//! quickly, load and validation grow linearly with the number of VirtualServices, and
//! private keys readable by others are reported. Real binary, real files.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const VS_HEAD: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: lol
spec:
  hosts: [a.example.com]
  gateways: [gw]
";

/// `validate` on `paths` → (exit code, stderr, wall time).
fn timed_validate(paths: &[&Path], extra: &[&str]) -> (i32, String, Duration) {
    let t = Instant::now();
    let (code, stderr, _) = validate(paths, extra);
    (code, stderr, t.elapsed())
}

#[test]
fn billion_laughs_is_refused_in_under_a_second_naming_file_and_line() {
    let dir = scratch("laughs");
    // The classic: nine levels of nine aliases (10^9 strings once expanded).
    let mut classic = format!(
        "{VS_HEAD}  lol:\n    a: &a [{}]\n",
        ["\"lol\""; 9].join(",")
    );
    for (prev, l) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        classic.push_str(&format!(
            "    {l}: &{l} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    // Wide: 5,000 aliases of a 5,000-string list, 25 million nodes from 35 KB. serde_yaml's
    // own repetition limit (100 alias jumps per event) lets this one through.
    let wide = format!(
        "{VS_HEAD}  lol:\n    a: &a [{}]\n    b: [{}]\n",
        ["lol"; 5000].join(","),
        ["*a"; 5000].join(",")
    );
    for (name, text, line) in [("classic.yaml", classic, 14), ("wide.yaml", wide, 10)] {
        let f = write(&dir, name, &text);
        let (code, stderr, took) = timed_validate(&[&f], &[]);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            took < Duration::from_secs(1),
            "{name}: refused after {took:?}; the bomb was expanded"
        );
        let want = format!("{name}:{line}: YAML aliases expand to more than 100000 nodes");
        assert!(
            stderr.lines().any(|l| l.contains(&want)),
            "want `{want}` in:\n{stderr}"
        );
    }
}

#[test]
fn documents_with_a_few_aliases_still_load() {
    let dir = scratch("aliases");
    let text = "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: &sel {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: &hosts [\"*.example.com\"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: edge}
spec:
  hosts: [reviews.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: edge}
spec:
  hosts: [reviews.example.com]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /a}}]
    route: &to-reviews
    - destination: &reviews {host: reviews.example.com, port: {number: 80}}
  - match: [{uri: {prefix: /b}}]
    route: *to-reviews
  - mirror: *reviews
    route: *to-reviews
";
    let f = write(&dir, "aliases.yaml", text);
    let (code, stderr, stdout) = validate(&[&f], &["--print"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("3 resource(s) read, 0 error(s), 0 warning(s)"),
        "{stderr}"
    );
    assert_eq!(
        stdout.matches("host: reviews.example.com").count(),
        4,
        "every alias expanded:\n{stdout}"
    );
}

#[test]
fn a_file_over_the_size_cap_is_refused_unread() {
    let dir = scratch("huge");
    let f = dir.join("huge.yaml");
    // Sparse: 64 MiB + 1 of zeros without writing them.
    std::fs::File::create(&f)
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let (code, stderr, took) = timed_validate(&[&f], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(
        stderr.contains("huge.yaml: file is 67108865 bytes, more than the 64 MiB"),
        "{stderr}"
    );
}

/// A Gateway, `n / 10` ServiceEntries with DestinationRules (subsets v1, v2), and `n`
/// VirtualServices of 10 routes each with realistic matches (shared and per-service
/// regexes, headers, query parameters, weights), as bench/scale.sh writes them.
fn scale_config(dir: &Path, n: usize) {
    use std::fmt::Write;
    let s = (n / 10).max(10);
    let mut g = String::from(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: public, namespace: edge}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: [\"*/*.example.com\"]\n",
    );
    for k in 0..s {
        write!(
            g,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{k}, namespace: backend}}\nspec:\n  hosts: [svc-{k}.backend.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints:\n  - {{address: 127.0.0.1, labels: {{version: v1}}}}\n  - {{address: 127.0.0.2, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc-{k}, namespace: backend}}\nspec:\n  host: svc-{k}.backend.internal\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n"
        )
        .unwrap();
    }
    write(dir, "00-registry.yaml", &g);
    let mut v = String::new();
    for i in 0..n {
        let d = |j: usize| format!("svc-{}.backend.internal", (i * 7 + j) % s);
        let (d0, d1, d2) = (d(0), d(1), d(2));
        write!(
            v,
            "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: app-{i}, namespace: team-{ns}}}
spec:
  hosts: [app-{i}.example.com]
  gateways: [edge/public]
  http:
  - match: [{{uri: {{prefix: /v1/orders}}, headers: {{x-tenant: {{exact: tenant-{t}}}}}}}]
    route: [{{destination: {{host: {d0}, port: {{number: 80}}, subset: v2}}}}]
  - match: [{{uri: {{regex: \"/api/v[0-9]+/users/[0-9]+\"}}}}]
    route: [{{destination: {{host: {d1}, port: {{number: 80}}}}}}]
    retries: {{attempts: 3, perTryTimeout: 2s, retryOn: \"5xx,reset\"}}
  - match: [{{uri: {{prefix: /static/}}}}]
    rewrite: {{uri: /assets/}}
    route: [{{destination: {{host: {d2}, port: {{number: 80}}}}}}]
  - match: [{{headers: {{end-user: {{regex: \"(alice|bob|carol)-{u}\"}}}}}}]
    route: [{{destination: {{host: {d0}, port: {{number: 80}}, subset: v2}}}}]
  - match: [{{uri: {{exact: /healthz}}}}]
    directResponse: {{status: 200, body: {{string: ok}}}}
  - match: [{{method: {{exact: POST}}, uri: {{prefix: /upload}}}}]
    timeout: 30s
    route: [{{destination: {{host: {d1}, port: {{number: 80}}}}}}]
  - match: [{{queryParams: {{version: {{exact: v2}}}}}}]
    route:
    - {{destination: {{host: {d0}, port: {{number: 80}}, subset: v1}}, weight: 80}}
    - {{destination: {{host: {d0}, port: {{number: 80}}, subset: v2}}, weight: 20}}
  - match: [{{uri: {{prefix: /legacy/}}}}]
    redirect: {{uri: /v2/, redirectCode: 301}}
  - match:
    - {{uri: {{regex: \"/catalog/[a-z0-9-]+/item/[0-9]+\"}}, ignoreUriCase: true, headers: {{x-debug: {{}}}}}}
    - uri: {{regex: \"/catalog/.+\"}}
    route: [{{destination: {{host: {d2}, port: {{number: 80}}}}}}]
  - route:
    - {{destination: {{host: {d0}, port: {{number: 80}}, subset: v1}}, weight: 90}}
    - {{destination: {{host: {d2}, port: {{number: 80}}}}, weight: 10}}
    headers: {{request: {{set: {{x-app: app-{i}}}}}}}
",
            ns = i % 20,
            t = i % 50,
            u = i % 1000,
        )
        .unwrap();
    }
    write(dir, "10-virtual-services.yaml", &v);
}

/// Held while a test measures time, so the two scale tests do not slow each other down.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The fastest of a few runs of `validate` on `dir`, which must be valid.
fn validate_time(dir: &Path, n: usize) -> Duration {
    (0..2)
        .map(|_| {
            let (code, stderr, took) = timed_validate(&[dir], &["--strict", "--quiet"]);
            assert_eq!(code, 0, "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "{} resource(s) read, 0 error(s), 0 warning(s)",
                    n + 1 + 2 * (n / 10).max(10)
                )),
                "{stderr}"
            );
            took
        })
        .min()
        .unwrap()
}

#[test]
fn validate_grows_linearly_with_virtual_services() {
    let (small, large) = (300, 3000);
    let dir_small = scratch("scale-300");
    scale_config(&dir_small, small);
    let dir_large = scratch("scale-3000");
    scale_config(&dir_large, large);
    let _timing = TIMING.lock().unwrap_or_else(|e| e.into_inner());
    let t_small = validate_time(&dir_small, small);
    let t_large = validate_time(&dir_large, large);
    eprintln!("validate: {small} VS in {t_small:?}, {large} VS in {t_large:?}");
    // 10x the resources: linear work takes ~10x (less, with the process's fixed
    // start-up), quadratic work ~100x. Before the indexes, debug builds took 1.7 s and
    // 37 s; after, 0.5 s and 2.4 s.
    assert!(
        t_large < t_small * 12 + Duration::from_secs(1),
        "validate of {large} VirtualServices took {t_large:?}, of {small} {t_small:?}: not linear"
    );
}

#[test]
fn snapshot_compilation_grows_linearly_with_virtual_services() {
    use meshgate::config::load_and_check;
    use meshgate::snapshot::compile;
    let labels = vec![("istio".to_string(), "ingressgateway".to_string())];
    let (small, large) = (500, 5000);
    let mut configs = Vec::new();
    for n in [small, large] {
        let dir = scratch(&format!("snapshot-{n}"));
        scale_config(&dir, n);
        let checked = load_and_check(&[dir], &[]);
        assert!(
            !checked.has_errors(),
            "{:#?}",
            checked.diagnostics.iter().take(3).collect::<Vec<_>>()
        );
        configs.push((n, checked.config));
    }
    let _timing = TIMING.lock().unwrap_or_else(|e| e.into_inner());
    let mut took = Vec::new();
    for (n, config) in &configs {
        // The fastest of three compilations.
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let snap = compile(config, &labels);
            best = best.min(t.elapsed());
            assert_eq!(snap.listeners.len(), 1);
            assert!(snap.notes.is_empty(), "{:?}", snap.notes);
            // Every destination resolves: n / 10 services x (all, v1, v2).
            assert_eq!(snap.clusters.len(), 3 * (n / 10).max(10));
        }
        took.push(best);
    }
    eprintln!(
        "snapshot: {small} VS in {:?}, {large} VS in {:?}",
        took[0], took[1]
    );
    // Before the indexes, debug builds took 0.43 s and 12.9 s; after, 0.09 s and 0.4 s.
    assert!(
        took[1] < took[0] * 12 + Duration::from_millis(300),
        "snapshot of {large} VirtualServices took {:?}, of {small} {:?}: not linear",
        took[1],
        took[0]
    );
}

/// A Gateway terminating TLS with a real certificate (`tls` is its TLS block).
fn tls_gateway(tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: edge}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8443, name: https, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {tls}
"
    )
}

#[cfg(unix)]
#[test]
fn private_keys_readable_by_others_are_a_warning_naming_file_and_field() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("key-mode");
    let ca = pki::ca(&dir.join("pki"), "ca");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "server",
        "/CN=a.example.com",
        &["DNS:a.example.com"],
    );
    let creds = dir.join("creds");
    pki::install_credential(&creds, "a-cert", &leaf, None);
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let by_files = write(
        &dir,
        "files.yaml",
        &tls_gateway(&format!(
            "{{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}",
            leaf.crt.display(),
            leaf.key.display()
        )),
    );
    let by_name = write(
        &dir,
        "named.yaml",
        &format!(
            "{}---\napiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n  credentialsDir: {}\n",
            tls_gateway("{mode: SIMPLE, credentialName: a-cert}"),
            creds.display()
        ),
    );
    let tls_key = creds.join("a-cert/tls.key");

    // Owner only: no warning.
    chmod(&leaf.key, 0o600);
    chmod(&tls_key, 0o600);
    for f in [&by_files, &by_name] {
        let (code, stderr, _) = validate(&[f], &["--strict"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(warning_lines(&stderr).is_empty(), "{stderr}");
    }

    // Group- or world-readable: a warning naming the file and the field; still valid.
    for (f, key, field, mode, who) in [
        (&by_files, &leaf.key, "privateKey", 0o640, "its group"),
        (
            &by_files,
            &leaf.key,
            "privateKey",
            0o644,
            "its group and all users",
        ),
        (&by_name, &tls_key, "credentialName", 0o604, "all users"),
    ] {
        chmod(key, mode);
        let (code, stderr, _) = validate(&[f], &[]);
        assert_eq!(code, 0, "a warning, not an error: {stderr}");
        let warnings = warning_lines(&stderr);
        let want = format!(
            ": warning: Gateway edge/gw: spec.servers[0].tls.{field}: private key {} (from tls.{field}) is readable by {who} (mode {mode:04o})",
            key.display()
        );
        assert!(
            warnings.len() == 1
                && warnings[0].contains(&want)
                && warnings[0].ends_with("[PrivateKeyReadable]"),
            "want one `{want}`, got:\n{stderr}"
        );
        let (code, _, _) = validate(&[f], &["--strict"]);
        assert_eq!(code, 1, "--strict fails on it");
    }
}

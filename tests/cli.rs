//! The `meshgate` command line as a user drives it: real binary, real files.

mod common;
use common::*;

const VS_AND_DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
spec:
  replicas: 1
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: gw
  namespace: edge
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [\"*/reviews.example.com\"]
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
  namespace: edge
spec:
  hosts: [reviews.example.com]
  gateways: [gw]
  http:
  - route:
    - destination:
        host: reviews.example.com
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: edge
spec:
  hosts: [reviews.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
";

#[test]
fn multi_document_file_with_mixed_kinds_and_api_versions() {
    let dir = scratch("mixed");
    let f = write(&dir, "all.yaml", VS_AND_DEPLOYMENT);
    let (code, stderr, _) = validate(&[&f], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("all.yaml:1: notice: Deployment default/reviews-v1: skipped"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("3 resource(s) read, 0 error(s), 0 warning(s), 1 document(s) skipped: valid"),
        "{stderr}"
    );
}

#[test]
fn every_problem_is_printed_with_file_line_resource_and_field() {
    let dir = scratch("problems");
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews.example.com]
  gateways: [gw]
  http:
  - match:
    - uri:
        prefx: /x
    rout:
    - destination:
        host: reviews
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: prod
spec:
  host: reviews
  subsets:
  - name: v1
  - name: v1
";
    let f = write(&dir, "bad.yaml", text);
    let (code, stderr, _) = validate(&[&f], &[]);
    assert_eq!(code, 1, "{stderr}");
    let name = f.display().to_string();
    for want in [
        format!("{name}:11: VirtualService default/reviews: spec.http[0].match[0].uri.prefx: unknown field `prefx`"),
        format!("{name}:12: VirtualService default/reviews: spec.http[0].rout: unknown field `rout`"),
        format!("{name}:25: DestinationRule prod/reviews: spec.subsets[1].name: duplicate subset names: v1"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

#[test]
fn yaml_syntax_error_gives_line_and_column() {
    let dir = scratch("syntax");
    let f = write(
        &dir,
        "s.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Gateway\nspec:\n  servers: [\n    a: b\n  - c\n",
    );
    let (code, stderr, _) = validate(&[&f], &[]);
    assert_eq!(code, 1, "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("YAML syntax error"))
        .expect(&stderr);
    assert!(line.starts_with(&format!("{}:", f.display())), "{line}");
    assert!(
        line.contains("(line ") && line.contains(", column "),
        "{line}"
    );
    // The position is file-relative: the broken document starts on line 6.
    let n: usize = line.split(':').nth(1).unwrap().parse().unwrap();
    assert!((9..=12).contains(&n), "{line}");
}

#[test]
fn wrong_types_and_enum_values_name_the_field() {
    let dir = scratch("types");
    let f = write(
        &dir,
        "t.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a.com]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {host: a.com}\n      weight: ten\n",
    );
    let (code, stderr, _) = validate(&[&f], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(":10: VirtualService default/a: spec.http[0].route[0].weight: invalid type: string \"ten\""),
        "{stderr}"
    );
}

#[test]
fn directories_are_read_recursively_in_sorted_order() {
    let dir = scratch("dirs");
    let gw = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: NAME}\nspec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n";
    write(&dir, "b/2.yml", &gw.replace("NAME", "b2"));
    write(&dir, "a.yaml", &gw.replace("NAME", "a"));
    write(&dir, "b/1.yaml", &gw.replace("NAME", "b1"));
    write(&dir, "notes.txt", "not yaml: [");
    write(&dir, ".hidden.yaml", "broken: [");
    let (code, stderr, stdout) = validate(&[&dir], &["--print"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("3 resource(s) read"), "{stderr}");
    let order: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  name: "))
        .collect();
    assert_eq!(
        order,
        vec!["  name: a", "  name: b1", "  name: b2"],
        "{stdout}"
    );
}

#[test]
fn print_shows_the_normalised_model() {
    let dir = scratch("print");
    let f = write(&dir, "all.yaml", VS_AND_DEPLOYMENT);
    let (code, stderr, stdout) = validate(&[&f], &["--print", "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains("notice:"),
        "--quiet hides notices: {stderr}"
    );
    let docs: Vec<serde_yaml::Value> = meshgate::config::loader::split_documents(&stdout)
        .iter()
        .map(|d| serde_yaml::from_str(&d.text).unwrap())
        .collect();
    assert_eq!(docs.len(), 3);
    let vs = &docs[1];
    assert_eq!(
        vs["apiVersion"], "networking.istio.io/v1",
        "v1alpha3 is shown as v1"
    );
    assert_eq!(vs["kind"], "VirtualService");
    assert_eq!(vs["metadata"]["namespace"], "edge");
    assert_eq!(
        vs["spec"]["http"][0]["route"][0]["destination"]["host"],
        "reviews.example.com"
    );
    assert!(
        vs["metadata"]["source"]
            .as_str()
            .unwrap()
            .ends_with("all.yaml:19"),
        "{stdout}"
    );
}

#[test]
fn strict_turns_warnings_into_failure() {
    let dir = scratch("strict");
    // A mesh-only VirtualService: valid, but a gateway never serves it.
    let f = write(
        &dir,
        "vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a.example.com]\n  http:\n  - route:\n    - destination: {host: a.example.com}\n",
    );
    let (code, stderr, _) = validate(&[&f], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr
            .contains(": warning: VirtualService default/a: spec.gateways: bound only to the mesh"),
        "{stderr}"
    );
    let (code, stderr, _) = validate(&[&f], &["--strict"]);
    assert_eq!(code, 1, "{stderr}");
}

#[test]
fn labels_decide_which_gateways_this_instance_serves() {
    let dir = scratch("labels");
    let f = write(
        &dir,
        "gw.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: egress}\nspec:\n  selector: {istio: egressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n",
    );
    let (_, stderr, _) = validate(&[&f], &[]);
    assert!(
        stderr.contains("selector istio=egressgateway matches no gateway instance"),
        "{stderr}"
    );
    let (_, stderr, _) = validate(&[&f], &["--label", "istio=egressgateway"]);
    assert!(!stderr.contains("matches no gateway instance"), "{stderr}");
    let out = meshgate([
        "validate",
        "--config",
        f.to_str().unwrap(),
        "--label",
        "novalue",
    ]);
    assert_eq!(out.status.code(), Some(2), "clap refuses a malformed label");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected KEY=VALUE"));
}

#[test]
fn missing_and_unreadable_inputs_are_reported() {
    let dir = scratch("missing");
    let gone = dir.join("nope.yaml");
    let (code, stderr, _) = validate(&[&gone], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{}: cannot read", gone.display())),
        "{stderr}"
    );
    let bin = dir.join("bin.yaml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let (code, stderr, _) = validate(&[&bin], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not UTF-8"), "{stderr}");
}

#[test]
fn run_refuses_an_invalid_config_with_the_validate_messages() {
    let dir = scratch("run");
    let f = write(&dir, "bad.yaml", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  servers: []\n");
    let out = meshgate(["run", "--config", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Gateway default/gw: spec.servers: gateway must have at least one server"),
        "{stderr}"
    );
    assert!(stderr.contains("refusing to start"), "{stderr}");
}

#[test]
fn version_and_help() {
    let out = meshgate(["version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("meshgate {}", env!("CARGO_PKG_VERSION"))
    );
    for (cmd, flags) in [
        (
            "validate",
            &["--config", "--label", "--print", "--strict", "--quiet"][..],
        ),
        ("run", &["--config", "--admin", "--label"][..]),
    ] {
        let out = meshgate([cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        for f in flags {
            assert!(help.contains(f), "{cmd} --help lacks {f}:\n{help}");
        }
    }
    let out = meshgate(["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("/etc/meshgate") && help.contains("127.0.0.1:15000"),
        "{help}"
    );
}

#[test]
fn shipped_conf_is_valid_without_warnings() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let (code, stderr, _) = validate(&[&conf], &["--strict"]);
    assert_eq!(code, 0, "{stderr}");
}

//! Istio's own configuration corpus through the real `meshgate validate`.

mod common;
use common::*;

/// Every sample, task and known-valid config validates (exit 0; warnings allowed).
#[test]
fn istio_samples_tasks_and_valid_configs_are_accepted() {
    let root = corpus();
    let mut files = Vec::new();
    for d in ["samples", "tasks", "valid-config"] {
        files.extend(yaml_files(&root.join(d)));
    }
    assert!(
        files.len() > 50,
        "corpus looks incomplete: {} files",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let (code, stderr, _) = validate(&[f], &[]);
        if code != 0 {
            failures.push(format!("{} (exit {code}):\n{}", f.display(), stderr));
        }
    }
    assert!(failures.is_empty(), "refused:\n{}", failures.join("\n"));
}

/// The documents of a crd-cel file, each with its `_err` (if any) removed.
fn cel_documents(name: &str) -> Vec<(Option<String>, String)> {
    let text = std::fs::read_to_string(corpus().join("validation/crd-cel").join(name)).unwrap();
    meshgate::config::loader::split_documents(&text)
        .into_iter()
        .filter_map(|d| {
            let mut v: serde_yaml::Value = serde_yaml::from_str(&d.text).unwrap();
            let m = v.as_mapping_mut()?;
            let err = m
                .remove("_err")
                .and_then(|e| e.as_str().map(str::to_string));
            Some((err, serde_yaml::to_string(&v).unwrap()))
        })
        .collect()
}

/// Each invalid document is refused with an error naming the field (or carrying the
/// message) that Istio's `_err` names.
#[test]
fn crd_cel_invalid_documents_are_refused_naming_the_field() {
    let dir = scratch("cel-invalid");
    let mut checked = 0;
    for file in ["destinationrule-invalid.yaml", "serviceentry-invalid.yaml"] {
        for (i, (err, doc)) in cel_documents(file).into_iter().enumerate() {
            let err = err.unwrap_or_else(|| panic!("{file} document {i} has no _err"));
            let p = write(&dir, &format!("{file}-{i}.yaml"), &doc);
            let (code, stderr, _) = validate(&[&p], &[]);
            assert_eq!(code, 1, "{file}#{i} ({err}) was accepted:\n{stderr}");
            let errors = error_lines(&stderr);
            // `_err` is either `field.path: Message` or just a message.
            let ok = match err.split_once(": ") {
                Some((field, msg)) if field.starts_with("spec") => errors
                    .iter()
                    .any(|l| l.contains(&format!(" {field}: ")) && l.contains(msg.trim())),
                _ => errors.iter().any(|l| l.contains(&err)),
            };
            assert!(
                ok,
                "{file}#{i}: expected an error like {err:?}, got:\n{stderr}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

#[test]
fn crd_cel_valid_documents_are_accepted() {
    let dir = scratch("cel-valid");
    let mut checked = 0;
    for file in ["destinationrule-valid.yaml", "serviceentry-valid.yaml"] {
        for (i, (_, doc)) in cel_documents(file).into_iter().enumerate() {
            let p = write(&dir, &format!("{file}-{i}.yaml"), &doc);
            let (code, stderr, _) = validate(&[&p], &[]);
            assert_eq!(code, 0, "{file}#{i} refused:\n{stderr}\n{doc}");
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

/// `istioctl analyze` fixtures: each expected (code, resource) appears as a warning.
/// Expectations follow istio/istio analyzers_test.go; where meshgate differs (it reads no
/// Kubernetes Services, and it serves no mesh) the README says why and the code here
/// is meshgate's.
#[test]
fn analyzer_fixtures_print_istios_warnings() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "conflicting-gateways.yaml",
            &[
                ("ConflictingGateways", "Gateway default/alpha"),
                ("ConflictingGateways", "Gateway default/beta"),
            ],
        ),
        (
            "gateway-no-workload.yaml",
            &[(
                "ReferencedResourceNotFound",
                "Gateway default/httpbin-gateway",
            )],
        ),
        (
            "gateway-duplicate-certificate.yaml",
            &[
                (
                    "GatewayDuplicateCertificate",
                    "Gateway istio-system/gateway-01-test-01",
                ),
                (
                    "GatewayDuplicateCertificate",
                    "Gateway istio-system/gateway-02-test-01",
                ),
                (
                    "GatewayDuplicateCertificate",
                    "Gateway istio-system/gateway-01-test-02",
                ),
                (
                    "GatewayDuplicateCertificate",
                    "Gateway default/gateway-01-test-03",
                ),
            ],
        ),
        (
            "virtualservice_gateways.yaml",
            &[
                (
                    "ReferencedResourceNotFound",
                    "VirtualService default/httpbin-bogus",
                ),
                (
                    "VirtualServiceHostNotFoundInGateway",
                    "VirtualService default/cross-test",
                ),
                (
                    "VirtualServiceHostNotFoundInGateway",
                    "VirtualService default/httpbin-bogus",
                ),
                (
                    "VirtualServiceHostNotFoundInGateway",
                    "VirtualService default/httpbin",
                ),
            ],
        ),
        (
            "virtualservice_host_not_found_gateway.yaml",
            &[
                (
                    "VirtualServiceHostNotFoundInGateway",
                    "VirtualService default/testing-service-02-test-01",
                ),
                (
                    "VirtualServiceHostNotFoundInGateway",
                    "VirtualService default/testing-service-02-test-02",
                ),
                (
                    "VirtualServiceHostNotFoundInGateway",
                    "VirtualService default/testing-service-02-test-03",
                ),
                (
                    "VirtualServiceHostNotFoundInGateway",
                    "VirtualService default/testing-service-03-test-04",
                ),
            ],
        ),
        (
            "virtualservice_host_not_found_gateway_with_ns_prefix.yaml",
            &[(
                "VirtualServiceHostNotFoundInGateway",
                "VirtualService default/testing-service-01-test-01",
            )],
        ),
        (
            "virtualservice_destinationhosts.yaml",
            &[
                (
                    "ReferencedResourceNotFound",
                    "VirtualService default/reviews-bogushost",
                ),
                (
                    "ReferencedResourceNotFound",
                    "VirtualService default/reviews-bookinfo-other",
                ),
                (
                    "ReferencedResourceNotFound",
                    "VirtualService default/reviews-mirror-bogushost",
                ),
                (
                    "ReferencedResourceNotFound",
                    "VirtualService default/reviews-bogusport",
                ),
                // Istio: VirtualServiceDestinationPortSelectorRequired, from a Kubernetes
                // Service with two ports; meshgate reads no Services, so the host is unknown.
                (
                    "ReferencedResourceNotFound",
                    "VirtualService default/reviews-2port-missing",
                ),
                (
                    "ReferencedResourceNotFound",
                    "VirtualService istio-system/cross-namespace-details",
                ),
                (
                    "ReferencedResourceNotFound",
                    "VirtualService hello/hello-export-to-bogus",
                ),
            ],
        ),
        (
            "virtualservice_destinationrules.yaml",
            &[
                (
                    "ReferencedResourceNotFound",
                    "VirtualService default/reviews-bogussubset",
                ),
                (
                    "ReferencedResourceNotFound",
                    "VirtualService default/reviews-mirror-bogussubset",
                ),
            ],
        ),
        (
            "virtualservice_dupmatches.yaml",
            &[
                (
                    "VirtualServiceUnreachableRule",
                    "VirtualService default/duplicate-match",
                ),
                (
                    "VirtualServiceUnreachableRule",
                    "VirtualService foo/sample-foo-cluster01",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService default/almost-duplicate-match",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService default/duplicate-match",
                ),
                (
                    "VirtualServiceUnreachableRule",
                    "VirtualService default/duplicate-tcp-match",
                ),
                (
                    "VirtualServiceUnreachableRule",
                    "VirtualService default/duplicate-empty-tcp",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService default/almost-duplicate-tcp-match",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService default/duplicate-tcp-match",
                ),
                (
                    "VirtualServiceUnreachableRule",
                    "VirtualService none/tls-routing",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService none/tls-routing-almostmatch",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService none/tls-routing",
                ),
            ],
        ),
        (
            "virtualservice_overlappingmatches.yaml",
            &[
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService default/non-method-get",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService default/overlapping-in-single-match",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService default/overlapping-in-two-matches",
                ),
                (
                    "VirtualServiceIneffectiveMatch",
                    "VirtualService default/overlapping-mathes-with-different-methods",
                ),
            ],
        ),
        (
            "virtualservice_route_rule_no_effects_ingress.yaml",
            &[(
                "IngressRouteRulesNotAffected",
                "VirtualService default/testing-service-01-test-01",
            )],
        ),
        // Istio: ConflictingMeshGatewayVirtualServiceHosts. A gateway serves no mesh, so
        // meshgate says that instead for each mesh-only VirtualService.
        (
            "virtualservice_conflictingmeshgatewayhosts.yaml",
            &[
                (
                    "VirtualServiceNotBoundToGateway",
                    "VirtualService team3/ratings",
                ),
                (
                    "VirtualServiceNotBoundToGateway",
                    "VirtualService foo/ratings",
                ),
                (
                    "VirtualServiceNotBoundToGateway",
                    "VirtualService foo/productpage",
                ),
                (
                    "VirtualServiceNotBoundToGateway",
                    "VirtualService foo/bogus-productpage",
                ),
            ],
        ),
    ];
    let dir = corpus().join("validation/analyzers");
    let mut missing = Vec::new();
    for (file, expected) in cases {
        let (_, stderr, _) = validate(&[&dir.join(file)], &[]);
        let warnings = warning_lines(&stderr);
        for (code, resource) in *expected {
            let found = warnings.iter().any(|l| {
                l.contains(&format!(": warning: {resource}: ")) && l.ends_with(&format!("[{code}]"))
            });
            if !found {
                missing.push(format!("{file}: {code} on {resource}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "missing warnings:\n{}",
        missing.join("\n")
    );
}

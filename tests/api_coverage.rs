//! Completeness against Istio's own schema: for every kind and version meshgate reads, a
//! document that sets every field the CRD defines (with a value of the schema's type) must
//! parse without an unknown-field, type or enum error. Validation may still object to the
//! made-up values; what matters is that no field of Istio's API is missing from the model.

mod common;
use common::*;
use serde_yaml::{Mapping, Value};

/// A value of the schema's type that sets every property below it.
fn exemplar(schema: &Value) -> Value {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Value::from(1);
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_sequence) {
        return e[0].clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut m = Mapping::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_mapping) {
                for (k, v) in props {
                    m.insert(k.clone(), exemplar(v));
                }
            } else if let Some(ap) = schema.get("additionalProperties") {
                m.insert(Value::from("k"), exemplar(ap));
            }
            Value::Mapping(m)
        }
        Some("array") => Value::Sequence(vec![exemplar(&schema["items"])]),
        Some("integer") => Value::from(1),
        Some("number") => Value::from(1.0),
        Some("boolean") => Value::from(true),
        _ if schema.get("format").and_then(Value::as_str) == Some("byte") => Value::from("eA=="),
        _ => Value::from("x"),
    }
}

#[test]
fn every_crd_field_of_every_version_is_in_the_model() {
    let text =
        std::fs::read_to_string(corpus().join("crds/customresourcedefinitions.gen.yaml")).unwrap();
    let dir = scratch("api-coverage");
    let mut checked = Vec::new();
    for doc in meshgate::config::loader::split_documents(&text) {
        let crd: Value = serde_yaml::from_str(&doc.text).unwrap();
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let group = crd["spec"]["group"].as_str().unwrap_or("");
        if group != "networking.istio.io"
            || ![
                "Gateway",
                "VirtualService",
                "DestinationRule",
                "ServiceEntry",
                "WorkloadEntry",
            ]
            .contains(&kind.as_str())
        {
            continue;
        }
        for version in crd["spec"]["versions"].as_sequence().unwrap() {
            let v = version["name"].as_str().unwrap();
            let spec = exemplar(&version["schema"]["openAPIV3Schema"]["properties"]["spec"]);
            let mut m = Mapping::new();
            m.insert("apiVersion".into(), format!("{group}/{v}").into());
            m.insert("kind".into(), kind.clone().into());
            m.insert(
                "metadata".into(),
                serde_yaml::from_str("{name: x}").unwrap(),
            );
            m.insert("spec".into(), spec);
            let f = write(
                &dir,
                &format!("{kind}-{v}.yaml"),
                &serde_yaml::to_string(&m).unwrap(),
            );
            let (_, stderr, _) = validate(&[&f], &[]);
            let structural: Vec<&str> = stderr
                .lines()
                .filter(|l| {
                    l.contains("unknown field")
                        || l.contains("invalid type")
                        || l.contains("unknown variant")
                        || l.contains("YAML syntax")
                })
                .collect();
            assert!(
                structural.is_empty(),
                "{kind} {v}: the model lacks Istio fields:\n{}",
                structural.join("\n")
            );
            checked.push(format!("{kind}/{v}"));
        }
    }
    assert_eq!(
        checked.len(),
        15,
        "expected 5 kinds x 3 versions, checked {checked:?}"
    );
}

//! Telemetry's settings, typed once from MeshConfig and the instance labels: the access
//! log (`accessLogFile`, `accessLogEncoding`, `accessLogFormat`, as Istio's MeshConfig)
//! and the gateway's own metric labels.

use super::access_log::format::Format;
use super::metrics::SourceLabels;
use crate::config::diagnostic::{Diagnostic, Severity};
use crate::config::model::{AccessLogEncoding, Kind, Spec};
use crate::config::Config;
use std::path::PathBuf;

pub struct Settings {
    /// Where the access log goes and its compiled format; `None`: off (Istio's default).
    pub access_log: Option<(PathBuf, Format)>,
    pub source: SourceLabels,
}

impl Settings {
    /// Reads MeshConfig; a format that does not compile is an error naming the file,
    /// the MeshConfig and the field, as `validate` reports every other error.
    pub fn from_config(
        c: &Config,
        instance_labels: &[(String, String)],
    ) -> Result<Settings, Box<Diagnostic>> {
        let source = source_labels(instance_labels);
        let Some(r) = c.of_kind(Kind::MeshConfig).next() else {
            return Ok(Settings {
                access_log: None,
                source,
            });
        };
        let Spec::MeshConfig(mc) = &r.spec else {
            unreachable!("of_kind(MeshConfig) yields MeshConfigs")
        };
        let path = mc.access_log_file.as_deref().unwrap_or("");
        if path.is_empty() {
            return Ok(Settings {
                access_log: None,
                source,
            });
        }
        let json = matches!(mc.access_log_encoding, Some(AccessLogEncoding::Json));
        let format = match mc.access_log_format.as_deref().map(str::trim) {
            None | Some("") if json => Ok(Format::istio_json()),
            None | Some("") => Ok(Format::istio_text()),
            Some(f) if json => Format::json(f),
            Some(_) => Format::text(mc.access_log_format.as_deref().unwrap_or_default()),
        };
        let format = format.map_err(|e| {
            Box::new(Diagnostic {
                severity: Severity::Error,
                file: r.source.file.clone(),
                line: Some(r.line_of("spec.accessLogFormat")),
                resource: Some(r.display_name()),
                field: Some("spec.accessLogFormat".into()),
                message: e.to_string(),
                code: None,
            })
        })?;
        // A relative path is taken relative to the file declaring it, as `credentialsDir`.
        let mut file = PathBuf::from(path);
        if file.is_relative() {
            if let Some(dir) = r.source.file.parent() {
                file = dir.join(file);
            }
        }
        Ok(Settings {
            access_log: Some((file, format)),
            source,
        })
    }
}

/// The gateway as Istio's `source_*` labels name it: an Istio gateway deployment
/// (`app: istio-ingressgateway`, `istio: ingressgateway`) reports `source_workload` =
/// `source_app` = `istio-ingressgateway` in `istio-system`. The `app` label names the
/// workload; without one, `istio-` + the `istio` label (so the default instance labels
/// give Istio's name); else `meshgate`.
fn source_labels(labels: &[(String, String)]) -> SourceLabels {
    let get = |k: &str| {
        labels
            .iter()
            .find(|(lk, _)| lk == k)
            .map(|(_, v)| v.clone())
    };
    let workload = get("app")
        .or_else(|| get("istio").map(|v| format!("istio-{v}")))
        .unwrap_or_else(|| "meshgate".into());
    SourceLabels {
        app: get("app").unwrap_or_else(|| workload.clone()),
        workload,
        workload_namespace: "istio-system".into(),
        version: get("version").unwrap_or_else(|| "unknown".into()),
        cluster: "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::source_labels;

    #[test]
    fn the_default_instance_is_istios_ingress_gateway() {
        let s = source_labels(&[("istio".into(), "ingressgateway".into())]);
        assert_eq!(s.workload, "istio-ingressgateway");
        assert_eq!(s.app, "istio-ingressgateway");
        assert_eq!(s.workload_namespace, "istio-system");
        assert_eq!(s.version, "unknown");
        let s = source_labels(&[
            ("app".into(), "edge".into()),
            ("version".into(), "v2".into()),
        ]);
        assert_eq!((s.workload.as_str(), s.version.as_str()), ("edge", "v2"));
        assert_eq!(source_labels(&[]).workload, "meshgate");
    }
}

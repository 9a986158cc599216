//! The dump's outputs: `table` and `wide` (kubectl-like columns under a header line that
//! describes the cache), `json` and `yaml` (a `v1` `List` of the objects, for kubectl) and
//! `name` (`kind.group/name` lines, as `kubectl get -o name`).
//!
//! The objects arrive redacted (unless `--show-secrets`): each credential is a redaction marker
//! (`{"redacted": "<redacted>"}`, see [`repocache::debug::redaction_marker`]). `json` and `yaml`
//! print the markers as they are, so that applying a dump back is refused by the API server
//! (the CRD requires a string there) instead of overwriting a credential; the columns of
//! `table` and `wide` show their text (`<redacted>`, `https://<redacted>@host/…`).

use std::io::Write;

use glasskube_api::condition::{condition_status, find_condition};
use glasskube_api::{
    ClusterPackage, Condition, HasConditions, Package, PackageInfo, PackageRepository,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource as _;
use repocache::debug::CacheReport;
use serde_json::{Value, json};

/// How `dump` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Columns, with a header line describing the cache.
    Table,
    /// `table` plus the resourceVersion and a status message.
    Wide,
    /// A `v1` `List` of the objects, as JSON.
    Json,
    /// A `v1` `List` of the objects, as YAML.
    Yaml,
    /// One `kind.group/name` line per object, as `kubectl get -o name`.
    Name,
}

/// `-o`: one of [`Output`]'s formats, or `jsonpath=TEMPLATE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `table`, `wide`, `json`, `yaml` or `name`.
    Plain(Output),
    /// `jsonpath=TEMPLATE` (kubectl's template syntax, see [`crate::jsonpath`]).
    JsonPath(crate::jsonpath::Template),
}

/// The values `-o` accepts, for messages.
pub const FORMATS: &str = "table, wide, json, yaml, name, jsonpath=TEMPLATE";

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(template) = text.strip_prefix("jsonpath=") {
            return crate::jsonpath::Template::parse(template).map(Format::JsonPath);
        }
        let plain = match text {
            "table" | "" => Output::Table,
            "wide" => Output::Wide,
            "json" => Output::Json,
            "yaml" => Output::Yaml,
            "name" => Output::Name,
            "jsonpath" => {
                return Err(
                    "-o jsonpath needs a template: -o jsonpath='{.items[*].metadata.name}'"
                        .to_owned(),
                );
            }
            other => {
                return Err(format!(
                    "unknown output format {other:?}: expected one of {FORMATS}"
                ));
            }
        };
        Ok(Format::Plain(plain))
    }
}

/// Writes `reports` in `format`; `single` is the object to apply a jsonpath template to when
/// exactly one was asked for by name (kubectl applies it to the object, not to a `List`).
pub fn write_format(
    out: &mut dyn Write,
    reports: &[CacheReport],
    format: &Format,
    single: bool,
) -> anyhow::Result<()> {
    match format {
        Format::Plain(output) => write_dump(out, reports, *output),
        Format::JsonPath(template) => {
            let items: Vec<&Value> = reports
                .iter()
                .flat_map(|r| r.objects.iter().flatten())
                .collect();
            let target = match (single, items.as_slice()) {
                (true, [one]) => (*one).clone(),
                _ => json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
            };
            let text = template.render(&target).map_err(anyhow::Error::msg)?;
            out.write_all(text.as_bytes())?;
            Ok(())
        }
    }
}

/// The line above a table: the cache's state, resourceVersion, size, age and relists.
pub fn header_line(report: &CacheReport) -> String {
    let last = report
        .last_relist
        .as_ref()
        .map(|l| {
            format!(
                " (last: {}, {} ago)",
                l.reason,
                crate::human_duration(std::time::Duration::from_secs_f64(l.ago_seconds.max(0.0)))
            )
        })
        .unwrap_or_default();
    format!(
        "# {} cache: {}, resourceVersion {}, {} object{}, snapshot age {}, relists {}{}",
        report.kind,
        report.state_detail,
        report.resource_version.as_deref().unwrap_or("-"),
        report.object_count,
        if report.object_count == 1 { "" } else { "s" },
        crate::human_duration(std::time::Duration::from_secs_f64(
            report.snapshot_age_seconds.max(0.0)
        )),
        report.stats.relists_total,
        last,
    )
}

/// Writes the dump of `reports` in `output` format.
pub fn write_dump(
    out: &mut dyn Write,
    reports: &[CacheReport],
    output: Output,
) -> anyhow::Result<()> {
    match output {
        Output::Json | Output::Yaml => {
            let items: Vec<&Value> = reports
                .iter()
                .flat_map(|r| r.objects.iter().flatten())
                .collect();
            let resource_version = match reports {
                [one] => one.resource_version.clone().unwrap_or_default(),
                _ => String::new(),
            };
            let list = json!({
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {"resourceVersion": resource_version},
                "items": items,
            });
            if output == Output::Json {
                serde_json::to_writer_pretty(&mut *out, &list)?;
                writeln!(out)?;
            } else {
                out.write_all(serde_saphyr::to_string(&list)?.as_bytes())?;
            }
        }
        Output::Name => {
            for object in reports.iter().flat_map(|r| r.objects.iter().flatten()) {
                writeln!(out, "{}", name_line(object))?;
            }
        }
        Output::Table | Output::Wide => {
            for (i, report) in reports.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                writeln!(out, "{}", header_line(report))?;
                let rows = rows(report, output == Output::Wide);
                out.write_all(align(&rows).as_bytes())?;
            }
        }
    }
    Ok(())
}

/// `packagerepository.packages.glasskube.dev/glasskube` (`kubectl get -o name`'s form).
pub fn name_line(object: &Value) -> String {
    let field = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    let kind = field("/kind").to_ascii_lowercase();
    let group = field("/apiVersion")
        .rsplit_once('/')
        .map(|(group, _)| format!(".{group}"))
        .unwrap_or_default();
    format!("{kind}{group}/{}", field("/metadata/name"))
}

/// Lays `rows` out in columns three spaces apart (the first row is the header).
pub fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[c].saturating_sub(cell.chars().count()) + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn cells(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| (*s).to_owned()).collect()
}

/// The table's rows (header first) for one cache.
pub fn rows(report: &CacheReport, wide: bool) -> Vec<Vec<String>> {
    let objects = report.objects.as_deref().unwrap_or_default();
    // Columns per kind; a kind without its own gets NAMESPACE, NAME and RESOURCEVERSION.
    let kind = report.kind.as_str();
    if kind == PackageRepository::kind(&()) {
        repository_rows(objects, wide)
    } else if kind == Package::kind(&()) {
        package_rows(objects, wide, true)
    } else if kind == ClusterPackage::kind(&()) {
        package_rows(objects, wide, false)
    } else if kind == PackageInfo::kind(&()) {
        info_rows(objects, wide)
    } else {
        generic_rows(objects)
    }
}

fn name(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn rv(meta: &ObjectMeta) -> String {
    meta.resource_version.clone().unwrap_or_default()
}

/// kubectl's AGE: `45s`, `12m`, `3h`, `6d`.
pub fn age(meta: &ObjectMeta) -> String {
    let Some(created) = &meta.creation_timestamp else {
        return "<unknown>".to_owned();
    };
    let secs = k8s_openapi::jiff::Timestamp::now()
        .duration_since(created.0)
        .as_secs()
        .max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn ready(conditions: &[Condition]) -> (String, String) {
    match find_condition(conditions, glasskube_api::condition::READY) {
        Some(c) => (
            match condition_status(c) {
                Some(true) => "True",
                Some(false) => "False",
                None => "Unknown",
            }
            .to_owned(),
            c.message.clone(),
        ),
        None => ("-".to_owned(), String::new()),
    }
}

/// Decodes each object, with its redaction markers replaced by their display text.
fn decode<K: serde::de::DeserializeOwned>(objects: &[Value]) -> Vec<Result<K, String>> {
    objects
        .iter()
        .map(|o| {
            let mut shown = o.clone();
            repocache::debug::display_markers(&mut shown);
            serde_json::from_value::<K>(shown).map_err(|_| {
                o.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("<unnamed>")
                    .to_owned()
            })
        })
        .collect()
}

/// `basic (inline)`, `bearer (secretRef)`, `none`.
pub fn auth_column(repo: &PackageRepository) -> String {
    let kind = repo.auth_kind();
    match kind {
        glasskube_api::AuthKind::None => "none".to_owned(),
        _ if repo.has_inline_credentials() => format!("{kind} (inline)"),
        _ => format!("{kind} (secretRef)"),
    }
}

fn repository_rows(objects: &[Value], wide: bool) -> Vec<Vec<String>> {
    let mut header = cells(&["NAME", "URL", "DEFAULT", "AUTH", "READY", "AGE"]);
    if wide {
        header.extend(cells(&["RESOURCEVERSION", "MESSAGE"]));
    }
    let mut rows = vec![header];
    for repo in decode::<PackageRepository>(objects) {
        let mut row = match &repo {
            Ok(repo) => {
                let (ready, _) = ready(repo.conditions());
                vec![
                    name(&repo.metadata),
                    repo.spec.url.clone(),
                    repo.is_default().to_string(),
                    auth_column(repo),
                    ready,
                    age(&repo.metadata),
                ]
            }
            Err(name) => vec![name.clone(), "<undecodable>".to_owned()],
        };
        if wide && let Ok(repo) = &repo {
            row.push(rv(&repo.metadata));
            row.push(ready(repo.conditions()).1);
        }
        rows.push(row);
    }
    rows
}

/// What Package and ClusterPackage share: metadata, spec and status.
type PackageParts = (
    ObjectMeta,
    glasskube_api::PackageSpec,
    Option<glasskube_api::PackageStatus>,
);

fn package_rows(objects: &[Value], wide: bool, namespaced: bool) -> Vec<Vec<String>> {
    let mut header = Vec::new();
    if namespaced {
        header.push("NAMESPACE".to_owned());
    }
    header.extend(cells(&[
        "NAME",
        "PACKAGE",
        "VERSION",
        "REPOSITORY",
        "INSTALLED",
        "READY",
        "AGE",
    ]));
    if wide {
        header.extend(cells(&["RESOURCEVERSION", "SUSPENDED", "MESSAGE"]));
    }
    let mut rows = vec![header];
    // Package and ClusterPackage share their spec and status.
    let decoded: Vec<Result<PackageParts, String>> = if namespaced {
        decode::<Package>(objects)
            .into_iter()
            .map(|r| r.map(|p| (p.metadata, p.spec, p.status)))
            .collect()
    } else {
        decode::<ClusterPackage>(objects)
            .into_iter()
            .map(|r| r.map(|p| (p.metadata, p.spec.0, p.status)))
            .collect()
    };
    for item in decoded {
        let (meta, spec, status) = match item {
            Ok(parts) => parts,
            Err(name) => {
                rows.push(vec![name, "<undecodable>".to_owned()]);
                continue;
            }
        };
        let conditions = status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let (ready, message) = ready(&conditions);
        let mut row = Vec::new();
        if namespaced {
            row.push(meta.namespace.clone().unwrap_or_default());
        }
        row.extend([
            name(&meta),
            spec.package_info.name.clone(),
            spec.package_info.version.clone(),
            spec.package_info
                .repository_name
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "(default)".to_owned()),
            status
                .as_ref()
                .and_then(|s| s.version.clone())
                .unwrap_or_else(|| "-".to_owned()),
            ready,
            age(&meta),
        ]);
        if wide {
            row.push(rv(&meta));
            row.push(spec.suspend.unwrap_or(false).to_string());
            row.push(message);
        }
        rows.push(row);
    }
    rows
}

fn info_rows(objects: &[Value], wide: bool) -> Vec<Vec<String>> {
    let mut header = cells(&["NAME", "PACKAGE", "VERSION", "REPOSITORY", "READY", "AGE"]);
    if wide {
        header.extend(cells(&["RESOURCEVERSION", "RESOLVED URL"]));
    }
    let mut rows = vec![header];
    for info in decode::<PackageInfo>(objects) {
        let info = match info {
            Ok(info) => info,
            Err(name) => {
                rows.push(vec![name, "<undecodable>".to_owned()]);
                continue;
            }
        };
        let conditions = info
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let mut row = vec![
            name(&info.metadata),
            info.spec.name.clone(),
            info.spec.version.clone().unwrap_or_else(|| "-".to_owned()),
            info.spec
                .repository_url
                .clone()
                .unwrap_or_else(|| "(default)".to_owned()),
            ready(&conditions).0,
            age(&info.metadata),
        ];
        if wide {
            row.push(rv(&info.metadata));
            row.push(
                info.status
                    .as_ref()
                    .and_then(|s| s.resolved_url.clone())
                    .unwrap_or_default(),
            );
        }
        rows.push(row);
    }
    rows
}

fn generic_rows(objects: &[Value]) -> Vec<Vec<String>> {
    let mut rows = vec![cells(&["NAMESPACE", "NAME", "RESOURCEVERSION"])];
    for o in objects {
        let field = |p: &str| {
            o.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        rows.push(vec![
            field("/metadata/namespace"),
            field("/metadata/name"),
            field("/metadata/resourceVersion"),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_three_spaces_apart() {
        let rows = vec![cells(&["NAME", "URL"]), cells(&["glasskube", "https://x"])];
        assert_eq!(align(&rows), "NAME        URL\nglasskube   https://x\n");
    }
}

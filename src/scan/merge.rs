//! `ipswcheck merge`: the `--format ndjson` outputs of `scan --shard K/N` runs joined
//! into the output one unsharded scan would have printed.
//!
//! Rows are taken as they are (each file was checked by exactly one shard) and sorted by
//! path as a scan sorts them. What a scan derives from several rows is derived again
//! over all of them: status counts, the damaged/incomplete/unsigned/beta lists,
//! duplicates and intact copies (a copy may sit in another shard), the exit code. Walk
//! counts add up (a sharded scan reports the path-less ones in shard 0 only), elapsed
//! time is the longest shard's. The `--device` recommendation is the newest of the
//! shards' recommended files (releases before betas, versions then builds compared
//! numerically, as a scan picks); when no shard has one, the first shard's reason is kept.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Map, Value};

/// Why the inputs cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("{file} line {line}: not a line of `scan --format ndjson` output ({why})")]
    BadLine {
        file: String,
        line: usize,
        why: String,
    },
    #[error("{file}: no summary line: not a complete `scan --format ndjson` output")]
    NoSummary { file: String },
    #[error("{path} is in both {first} and {second}: the inputs overlap (the same shard twice, or different K/N splits?)")]
    Overlap {
        path: String,
        first: String,
        second: String,
    },
}

/// Merge `inputs` (name, NDJSON text) into one NDJSON text.
pub fn merge(inputs: &[(String, String)]) -> Result<String, MergeError> {
    let mut rows: Vec<(Value, String)> = Vec::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut summaries: Vec<Map<String, Value>> = Vec::new();
    for (name, text) in inputs {
        let mut summary = None;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |why: String| MergeError::BadLine {
                file: name.clone(),
                line: i + 1,
                why,
            };
            let v: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            if let Some(Value::Object(s)) = v.get("summary") {
                if summary.is_some() {
                    return Err(bad("a second summary line".into()));
                }
                summary = Some(s.clone());
            } else if let Some(path) = v.get("path").and_then(Value::as_str) {
                if let Some(first) = owner.insert(path.to_owned(), name.clone()) {
                    return Err(MergeError::Overlap {
                        path: path.to_owned(),
                        first,
                        second: name.clone(),
                    });
                }
                rows.push((v.clone(), path.to_owned()));
            } else {
                return Err(bad("neither a row with a path nor a summary".into()));
            }
        }
        summaries.push(summary.ok_or_else(|| MergeError::NoSummary { file: name.clone() })?);
    }
    // A scan sorts rows by path (component-wise, as `Path` compares).
    rows.sort_by(|a, b| Path::new(&a.1).cmp(Path::new(&b.1)));
    let mut rows: Vec<Value> = rows.into_iter().map(|(v, _)| v).collect();
    mark_duplicates(&mut rows);
    let summary = merged_summary(&rows, &summaries);
    let mut out = String::new();
    for row in &rows {
        out.push_str(&serde_json::to_string(row).expect("serializes"));
        out.push('\n');
    }
    out.push_str(
        &serde_json::to_string(&serde_json::json!({ "summary": summary })).expect("serializes"),
    );
    out.push('\n');
    Ok(out)
}

fn text<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn status(row: &Value) -> &str {
    text(row, "/scan/status").unwrap_or_default()
}

fn intact(row: &Value) -> bool {
    !matches!(status(row), "damaged" | "incomplete" | "interrupted")
}

/// `duplicate_of` and `intact_copy` over every row, as `scan` marks them in one run:
/// the first intact row (by path) of each (build, fingerprint) is the original.
fn mark_duplicates(rows: &mut [Value]) {
    let key = |r: &Value| -> Option<(String, String)> {
        Some((
            text(r, "/firmware/build")?.to_owned(),
            text(r, "/scan/fingerprint")?.to_owned(),
        ))
    };
    let mut first: HashMap<(String, String), String> = HashMap::new();
    for r in rows.iter() {
        if let (true, Some(k)) = (intact(r), key(r)) {
            first
                .entry(k)
                .or_insert_with(|| text(r, "/path").unwrap_or_default().to_owned());
        }
    }
    for r in rows.iter_mut() {
        let path = text(r, "/path").unwrap_or_default().to_owned();
        let original = key(r)
            .and_then(|k| first.get(&k))
            .filter(|o| **o != path)
            .cloned();
        let (dup, copy) = match (&original, intact(r), status(r)) {
            (Some(o), true, _) => (Some(o.clone()), None),
            (Some(o), false, "damaged") => (None, Some(o.clone())),
            _ => (None, None),
        };
        if let Some(scan) = r.get_mut("scan").and_then(Value::as_object_mut) {
            scan.insert("duplicate_of".into(), dup.map_or(Value::Null, Value::from));
            scan.insert("intact_copy".into(), copy.map_or(Value::Null, Value::from));
        }
    }
}

fn merged_summary(rows: &[Value], inputs: &[Map<String, Value>]) -> Map<String, Value> {
    fn all<'i>(
        inputs: &'i [Map<String, Value>],
        key: &'static str,
    ) -> impl Iterator<Item = &'i Value> {
        inputs.iter().filter_map(move |s| s.get(key))
    }
    let all = |key: &'static str| all(inputs, key);
    // Saturating: the inputs are files anyone can write, and a count near 2^64 must not
    // wrap into a small, believable one.
    let sum = |key: &'static str| {
        all(key)
            .filter_map(Value::as_u64)
            .fold(0u64, u64::saturating_add)
    };
    let mut s = Map::new();

    let mut paths: Vec<Value> = Vec::new();
    for p in all("paths").filter_map(Value::as_array).flatten() {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    s.insert("paths".into(), Value::Array(paths));
    s.insert("files_examined".into(), sum("files_examined").into());
    s.insert("ipsw_files".into(), rows.len().into());
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in all("skipped").filter_map(Value::as_object).flatten() {
        let n = skipped.entry(k.clone()).or_default();
        *n = n.saturating_add(v.as_u64().unwrap_or(0));
    }
    s.insert("skipped".into(), serde_json::json!(skipped));
    s.insert("aliases".into(), sum("aliases").into());
    s.insert("unreadable".into(), sorted_by_path(all("unreadable")));

    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for k in all("counts")
        .filter_map(Value::as_object)
        .flat_map(Map::keys)
    {
        counts.insert(k.clone(), 0);
    }
    for r in rows {
        *counts.entry(status(r).to_owned()).or_default() += 1;
    }
    s.insert("counts".into(), serde_json::json!(counts));

    // The lists, with intact copies as marked over every row.
    let copies: HashMap<&str, &Value> = rows
        .iter()
        .filter_map(|r| Some((text(r, "/path")?, r.pointer("/scan/intact_copy")?)))
        .collect();
    for list in [
        "damaged",
        "incomplete",
        "unsigned",
        "signing_unknown",
        "betas",
    ] {
        let mut merged = sorted_by_path(all(list));
        for item in merged.as_array_mut().into_iter().flatten() {
            let path = text(item, "/path").unwrap_or_default().to_owned();
            if let (Some(obj), Some(copy)) = (item.as_object_mut(), copies.get(path.as_str())) {
                match copy {
                    Value::Null => obj.remove("intact_copy"),
                    c => obj.insert("intact_copy".into(), (*c).clone()),
                };
            }
        }
        s.insert(list.into(), merged);
    }
    s.insert("duplicates".into(), duplicate_groups(rows));
    s.insert("recommendation".into(), recommendation(rows, inputs));
    s.insert(
        "files_hashed".into(),
        rows.iter()
            .filter(|r| r.pointer("/scan/hashed") == Some(&Value::Bool(true)))
            .count()
            .into(),
    );
    s.insert(
        "files_from_cache".into(),
        rows.iter()
            .filter(|r| r.pointer("/scan/cached") == Some(&Value::Bool(true)))
            .count()
            .into(),
    );
    s.insert("bytes_hashed".into(), sum("bytes_hashed").into());
    s.insert("not_checked".into(), sum("not_checked").into());
    let interrupted = all("interrupted").any(|v| v == &Value::Bool(true));
    s.insert("interrupted".into(), interrupted.into());
    let elapsed = all("elapsed_seconds")
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    s.insert("elapsed_seconds".into(), elapsed.into());
    let codes: Vec<i64> = all("exit_code").filter_map(Value::as_i64).collect();
    let exit = if interrupted || codes.contains(&130) {
        130
    } else if codes.iter().any(|&c| c != 0) {
        1
    } else {
        0
    };
    s.insert("exit_code".into(), exit.into());
    s
}

fn sorted_by_path<'v>(lists: impl Iterator<Item = &'v Value>) -> Value {
    let mut items: Vec<Value> = lists
        .filter_map(Value::as_array)
        .flatten()
        .cloned()
        .collect();
    items.sort_by(|a, b| {
        Path::new(text(a, "/path").unwrap_or_default())
            .cmp(Path::new(text(b, "/path").unwrap_or_default()))
    });
    Value::Array(items)
}

fn duplicate_groups(rows: &[Value]) -> Value {
    let mut groups: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
    for r in rows {
        let (Some(original), Some(build), Some(fp)) = (
            text(r, "/scan/duplicate_of"),
            text(r, "/firmware/build"),
            text(r, "/scan/fingerprint"),
        ) else {
            continue;
        };
        let g = groups
            .entry((build.to_owned(), fp.to_owned()))
            .or_insert_with(|| {
                let mut g = Map::new();
                g.insert(
                    "product_version".into(),
                    text(r, "/firmware/product_version")
                        .unwrap_or_default()
                        .into(),
                );
                g.insert("build".into(), build.into());
                g.insert("fingerprint".into(), fp.into());
                g.insert("paths".into(), Value::Array(vec![original.into()]));
                g
            });
        if let Some(Value::Array(paths)) = g.get_mut("paths") {
            paths.push(text(r, "/path").unwrap_or_default().into());
        }
    }
    Value::Array(groups.into_values().map(Value::Object).collect())
}

/// `15.10.1` → [15, 10, 1].
fn version_key(v: &str) -> Vec<u64> {
    v.split('.')
        .map(|p| p.trim().parse().unwrap_or(0))
        .collect()
}

fn recommendation(rows: &[Value], inputs: &[Map<String, Value>]) -> Value {
    let recs: Vec<&Value> = inputs
        .iter()
        .filter_map(|s| s.get("recommendation"))
        .filter(|r| !r.is_null())
        .collect();
    let beta = |r: &Value| {
        let path = text(r, "/path").unwrap_or_default();
        rows.iter()
            .find(|row| text(row, "/path") == Some(path))
            .and_then(|row| row.pointer("/firmware/beta"))
            == Some(&Value::Bool(true))
    };
    let newer = |a: &Value, b: &Value| -> Ordering {
        (!beta(a))
            .cmp(&!beta(b))
            .then_with(|| {
                version_key(text(a, "/product_version").unwrap_or_default()).cmp(&version_key(
                    text(b, "/product_version").unwrap_or_default(),
                ))
            })
            .then_with(|| {
                build_cmp(
                    text(a, "/build").unwrap_or_default(),
                    text(b, "/build").unwrap_or_default(),
                )
            })
            // Among equals the first by path, as a scan picks.
            .then_with(|| {
                Path::new(text(b, "/path").unwrap_or_default())
                    .cmp(Path::new(text(a, "/path").unwrap_or_default()))
            })
    };
    let best = recs
        .iter()
        .filter(|r| text(r, "/path").is_some())
        .copied()
        .max_by(|a, b| newer(a, b));
    best.or(recs.first().copied())
        .cloned()
        .unwrap_or(Value::Null)
}

/// Builds compared as a scan compares them ([`super::recommend::build_key`]).
fn build_cmp(a: &str, b: &str) -> Ordering {
    super::recommend::build_key(a).cmp(&super::recommend::build_key(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_broken_inputs_are_refused() {
        let row = r#"{"path":"a.ipsw","scan":{"status":"ok"}}"#;
        let summary = r#"{"summary":{"exit_code":0}}"#;
        let one = format!("{row}\n{summary}\n");
        let err = merge(&[("s0".into(), one.clone()), ("s1".into(), one.clone())]).unwrap_err();
        assert!(matches!(err, MergeError::Overlap { .. }), "{err}");
        let err = merge(&[("s0".into(), row.to_owned())]).unwrap_err();
        assert_eq!(err, MergeError::NoSummary { file: "s0".into() });
        let err = merge(&[("s0".into(), "{not json\n".into())]).unwrap_err();
        assert!(matches!(err, MergeError::BadLine { line: 1, .. }), "{err}");
    }

    #[test]
    fn a_duplicate_in_another_shard_is_found() {
        let row = |path: &str, status: &str| {
            format!(
                r#"{{"path":"{path}","firmware":{{"build":"19H370","product_version":"15.8"}},"scan":{{"status":"{status}","fingerprint":"f","duplicate_of":null,"intact_copy":null}}}}"#
            )
        };
        let s0 = format!(
            "{}\n{{\"summary\":{{\"exit_code\":0}}}}\n",
            row("b.ipsw", "ok")
        );
        let s1 = format!(
            "{}\n{}\n{{\"summary\":{{\"exit_code\":1}}}}\n",
            row("a.ipsw", "ok"),
            row("c.ipsw", "damaged")
        );
        let out = merge(&[("s0".into(), s0), ("s1".into(), s1)]).unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(text(&lines[0], "/path"), Some("a.ipsw"));
        assert_eq!(text(&lines[1], "/scan/duplicate_of"), Some("a.ipsw"));
        assert_eq!(text(&lines[2], "/scan/intact_copy"), Some("a.ipsw"));
        assert_eq!(
            lines[3].pointer("/summary/exit_code"),
            Some(&Value::from(1))
        );
        assert_eq!(
            lines[3].pointer("/summary/duplicates/0/paths"),
            Some(&serde_json::json!(["a.ipsw", "b.ipsw"]))
        );
    }

    /// Shard outputs are files anyone can write: counts near 2^64 saturate instead of
    /// wrapping into small believable numbers (or panicking where overflow is checked).
    #[test]
    fn counts_near_2_64_saturate() {
        let shard = |path: &str, n: u64| {
            format!(
                "{{\"path\":\"{path}\",\"scan\":{{\"status\":\"ok\"}}}}\n\
                 {{\"summary\":{{\"exit_code\":0,\"files_examined\":{n},\"bytes_hashed\":{n},\
                 \"skipped\":{{\"not_ipsw\":{n}}}}}}}\n"
            )
        };
        let big = u64::MAX - 1;
        let out = merge(&[
            ("s0".into(), shard("a.ipsw", big)),
            ("s1".into(), shard("b.ipsw", 5)),
        ])
        .unwrap();
        let summary: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        for pointer in [
            "/summary/files_examined",
            "/summary/bytes_hashed",
            "/summary/skipped/not_ipsw",
        ] {
            assert_eq!(
                summary.pointer(pointer),
                Some(&Value::from(u64::MAX)),
                "{pointer}"
            );
        }
    }
}

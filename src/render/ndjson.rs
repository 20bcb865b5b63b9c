//! `ndjson`: one compact JSON document per line — a report; a scan's rows then one
//! `{"summary": …}` line; one line per build for `signed`.

use serde::Serialize;

use super::{Renderer, ScanResult, SignedList};
use crate::report::Report;
use crate::scan::{Row, Summary};

pub struct Ndjson;

#[derive(Serialize)]
struct SummaryLine<'a> {
    summary: &'a Summary,
}

fn line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serializes") + "\n"
}

impl Renderer for Ndjson {
    fn report(&self, report: &Report) -> String {
        line(report)
    }

    fn scan(&self, result: &ScanResult) -> String {
        let mut out: String = result.files.iter().map(|f| line(&Row::from(f))).collect();
        out.push_str(&line(&SummaryLine {
            summary: &result.summary,
        }));
        out
    }

    fn signed(&self, list: &SignedList) -> String {
        if let Some(error) = &list.error {
            return line(&serde_json::json!({
                "product_type": list.product_type, "source": list.source, "error": error
            }));
        }
        list.builds
            .iter()
            .map(|b| {
                line(&serde_json::json!({
                    "product_type": list.product_type, "source": list.source, "build": b
                }))
            })
            .collect()
    }
}

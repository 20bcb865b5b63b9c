//! `json`: one pretty document — a report, `{"schema", "files": [rows], "summary"}` for a
//! scan, or `signed`'s list.

use serde::Serialize;

use super::{Renderer, ScanResult, SignedList};
use crate::report::{Report, SCHEMA};
use crate::scan::{Row, Summary};

pub struct Json;

#[derive(Serialize)]
struct Document<'a> {
    schema: u32,
    files: Vec<Row<'a>>,
    summary: &'a Summary,
}

#[derive(Serialize)]
struct Signed<'a> {
    schema: u32,
    #[serde(flatten)]
    list: &'a SignedList,
}

impl Renderer for Json {
    fn report(&self, report: &Report) -> String {
        serde_json::to_string_pretty(report).expect("a report serializes") + "\n"
    }

    fn scan(&self, result: &ScanResult) -> String {
        let doc = Document {
            schema: SCHEMA,
            files: result.files.iter().map(Row::from).collect(),
            summary: &result.summary,
        };
        serde_json::to_string_pretty(&doc).expect("the document serializes") + "\n"
    }

    fn signed(&self, list: &SignedList) -> String {
        let doc = Signed {
            schema: SCHEMA,
            list,
        };
        serde_json::to_string_pretty(&doc).expect("the list serializes") + "\n"
    }
}

//! `csv`: a header, then one row per file (a single check is a one-row file), or one row
//! per build for `signed`.

use super::{Renderer, ScanResult, SignedList};
use crate::report::{CheckStatus, Report};
use crate::scan::FileResult;
use crate::signing::SigningStatus;

pub struct Csv;

const HEADER: &str = "path,status,product_version,build,beta,supported_product_types,size,\
archive,components,checksum,signing,for_device,predicted_restore_error,restore_error,\
exit_code,cached,duplicate_of,problem\n";

fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn status(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Ok => "ok",
        CheckStatus::Fail => "fail",
        CheckStatus::Warn => "warn",
        CheckStatus::Skipped => "skipped",
    }
}

fn signing(s: SigningStatus) -> &'static str {
    match s {
        SigningStatus::Signed => "signed",
        SigningStatus::NotSigned => "not_signed",
        SigningStatus::Unknown => "unknown",
        SigningStatus::Disputed => "disputed",
        SigningStatus::Skipped => "skipped",
    }
}

/// One row: a scan's file, or a single report (`scan` facts then empty).
fn row(r: &Report, path: &str, scan: Option<&FileResult>) -> String {
    let fw = r.firmware.as_ref();
    let judgement = r.judgement();
    let cells = [
        path.to_owned(),
        scan.map_or(judgement.file_status, |f| f.status)
            .name()
            .to_owned(),
        fw.map(|f| f.product_version.clone()).unwrap_or_default(),
        fw.map(|f| f.build.clone()).unwrap_or_default(),
        fw.map(|f| f.beta.to_string()).unwrap_or_default(),
        fw.map(|f| f.supported_product_types.join(" "))
            .unwrap_or_default(),
        r.size.map(|s| s.to_string()).unwrap_or_default(),
        status(r.checks.archive.status).to_owned(),
        status(r.checks.components.status).to_owned(),
        status(r.checks.checksum.status).to_owned(),
        signing(r.checks.signing.status).to_owned(),
        scan.and_then(|f| f.for_device)
            .map(|b| b.to_string())
            .unwrap_or_default(),
        r.predicted_restore_error.clone().unwrap_or_default(),
        judgement.own_restore_error.unwrap_or_default().to_owned(),
        r.exit_code.to_string(),
        scan.map(|f| f.cached.to_string()).unwrap_or_default(),
        scan.and_then(|f| f.duplicate_of.clone())
            .unwrap_or_default(),
        match scan {
            Some(f) => f.problem().unwrap_or_default(),
            None => r
                .problems
                .first()
                .map(|p| p.message.clone())
                .unwrap_or_default(),
        },
    ];
    let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
    line.join(",") + "\n"
}

impl Renderer for Csv {
    fn report(&self, report: &Report) -> String {
        format!("{HEADER}{}", row(report, &report.file, None))
    }

    fn scan(&self, result: &ScanResult) -> String {
        let mut out = String::from(HEADER);
        for f in &result.files {
            out.push_str(&row(&f.report, &f.path_str(), Some(f)));
        }
        out
    }

    fn signed(&self, list: &SignedList) -> String {
        let mut out = String::from("product_type,version,build,url,sha1\n");
        for b in &list.builds {
            let cells = [
                list.product_type.clone(),
                b.version.clone(),
                b.buildid.clone(),
                b.url.clone().unwrap_or_default(),
                b.sha1sum.clone().unwrap_or_default(),
            ];
            out.push_str(&cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }
}

//! Build facts for `ipswcheck --version`: the git commit (`git rev-parse --short HEAD`,
//! "unknown" without git or outside a repository) and the enabled features. Never fails
//! the build.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned());
    let mut features = Vec::new();
    if std::env::var_os("CARGO_FEATURE_AWS_LC").is_some() {
        features.push("aws-lc");
    }
    let features = if features.is_empty() {
        "none".to_owned()
    } else {
        features.join(", ")
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=IPSWCHECK_VERSION={version} (commit {commit}; features: {features})");
    // Rebuild when HEAD moves (a checkout or a commit), only for files that exist: a
    // missing one would make cargo rerun this script on every build.
    println!("cargo:rerun-if-changed=build.rs");
    let git = Path::new(".git");
    if git.join("HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
            if let Some(reference) = head.trim().strip_prefix("ref: ") {
                if git.join(reference).exists() {
                    println!("cargo:rerun-if-changed=.git/{reference}");
                }
            }
        }
        if git.join("packed-refs").exists() {
            println!("cargo:rerun-if-changed=.git/packed-refs");
        }
    }
}

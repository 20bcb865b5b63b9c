//! ipswcheck's integration tests, as one binary (as ripgrep does): one link instead of
//! one per file, one process whose tests share the build of `util`.
//!
//! Each module is a former `tests/<name>.rs` binary, kept in its own file; `util` holds
//! every shared helper (the one loopback HTTP server, the signing stand-ins, the remote
//! file server, the robustness tools, the fuzz seeds). Run one module with
//! `cargo test --release --test tests <module>::`.

mod util;

mod adversarial;
mod check;
mod cli;
mod deadlines;
mod device;
mod downgrade;
mod fetch_links;
mod fixture;
mod forgery;
mod formats;
mod identity;
mod judge;
mod limits;
mod memory_bounds;
mod network_faults;
mod odd_zips;
mod output;
mod pipelined;
mod quick;
mod realdata;
mod remote;
mod remote_bounds;
mod scan;
mod shard;
mod shortcut;
mod signing;
mod signing_cli;
mod signing_tls;
mod special_files;
mod streamed_fetch;
mod streams;
mod tss_request;
#[cfg(unix)]
mod usb;

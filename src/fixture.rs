//! The project's fixture builder: synthetic IPSWs whose every byte the tests control.
//!
//! - [`zipwriter`]: a small streaming zip writer (stored/deflated, data descriptors,
//!   forced or automatic zip64, fixed timestamps) that reports every entry's offsets.
//! - [`img4`]: IM4P / IMG4 / IMG3 containers shaped like Apple's, and `ftab.bin`.
//! - [`rules`]: the digest rules of FIRMWARE.md §3 as the builder applies them.
//! - [`rng`]: fast deterministic fill data (incompressible or ~3:1 compressible).
//! - [`ipsw`]: [`IpswSpec`] and [`build_ipsw`], which plan the build identities, write
//!   every file once (big DMGs streamed and hashed chunk by chunk) and then write a
//!   `BuildManifest.plist` whose digests come from the bytes written.
//!
//! Presets: [`IpswSpec::sample`] (the committed `testdata/sample.ipsw`),
//! [`IpswSpec::a9_sample`], [`IpswSpec::img3_sample`], [`IpswSpec::benchmark`],
//! [`IpswSpec::benchmark_sha1`], [`IpswSpec::benchmark_stored`].
//! `cargo run --release --example make_fixture -- OUT.ipsw --preset sample` writes one.

pub mod img4;
pub mod ipsw;
pub mod rng;
pub mod rules;
pub mod zipwriter;

pub use ipsw::{
    build_ipsw, platform_name, BasebandKind, BasebandLayout, BasebandMember, BasebandSpec,
    ComponentRecord, DeviceSpec, DigestRule, FixtureLayout, IdentityKind, IdentityRecord, IpswSpec,
    PlistFormat, StreamedIm4p,
};
pub use rng::Fill;
pub use zipwriter::{DosTimestamp, EntryLayout, Method, ZipLayout, ZipOptions, ZipWriter};

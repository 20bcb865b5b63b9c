//! ipswcheck: tells you, before a restore, whether an iPhone/iPad firmware file (.ipsw)
//! will work on your device.
//!
//! Data flows one way: [`archive`] opens the zip by memory map → [`manifest`] reads what
//! Apple promised → [`identify`] picks the build identities for the device ([`device`]
//! knows the boards) → [`verify`] hashes every component against its digest ∥ [`signing`]
//! asks Apple's TSS server → every step reports typed [`judge::Finding`]s, and [`judge`]
//! alone turns them into the verdict, the exit code, the predicted restore error and the
//! scan status → [`render`] prints the [`report`] in every format. [`check`] runs that
//! pipeline for one file; [`scan`] for a library; [`remote`] before and while
//! downloading.

pub mod archive;
pub mod budget;
pub mod check;
pub mod device;
pub mod digest;
pub mod exit;
pub mod guard;
pub mod identify;
pub mod img4;
pub mod input;
pub mod judge;
pub mod manifest;
pub mod remote;
pub mod render;
pub mod report;
pub mod scan;
pub mod signing;
pub mod usb;
pub mod verify;

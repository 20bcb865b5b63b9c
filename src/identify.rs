//! Which build identities of a manifest restore a given device — the check Finder makes
//! before it says "The firmware file is not compatible".
//!
//! idevicerestore's rule (FIRMWARE.md §2): the product type must be listed in
//! `SupportedProductTypes`, then an identity must match the device's board, by
//! `Info/DeviceClass` or by `ApChipID` + `ApBoardID`. A product type with two boards
//! (iPhone8,1: n71ap and n71map) must be served on every board unless `--board` narrows
//! it, because the user may hold either. The Erase identity is the default; Research
//! identities are never picked by default (idevicerestore #511).
//!
//! File names are never consulted: `iPhone9,1_10.0.1_14A403_Restore.ipsw` also serves
//! the iPhone9,3.

use crate::device::{self, Device};
use crate::judge::Finding;
use crate::manifest::{BuildIdentity, BuildManifest, RestoreBehavior};

/// The identities that restore or update a device: a `RestoreBehavior` Apple names
/// (Erase, Update/Upgrade), not Research. A manifest without any (a Developer Disk Image,
/// a macOS bootability bundle: FIRMWARE.md §1) restores nothing, however many product
/// types it lists.
pub fn restore_identities(manifest: &BuildManifest) -> Vec<&BuildIdentity> {
    manifest
        .identities
        .iter()
        .filter(|i| i.info.behavior().is_some() && !i.info.is_research())
        .collect()
}

/// The identities to verify: those of the device, or every customer identity when no
/// device was given.
pub fn select<'m>(
    manifest: &'m BuildManifest,
    devices: Option<&[&'static Device]>,
    behavior: RestoreBehavior,
) -> Result<Vec<&'m BuildIdentity>, Finding> {
    match devices {
        None => Ok(customer_identities(manifest, behavior)),
        Some(boards) => for_device(manifest, boards, behavior),
    }
}

/// Every restore identity with `behavior`; failing that every restore identity (an
/// Update-only, OTA-style file checked without a device is still verified).
pub fn customer_identities(
    manifest: &BuildManifest,
    behavior: RestoreBehavior,
) -> Vec<&BuildIdentity> {
    let restore = restore_identities(manifest);
    let with_behavior: Vec<&BuildIdentity> = restore
        .iter()
        .copied()
        .filter(|i| i.info.behavior() == Some(behavior))
        .collect();
    if with_behavior.is_empty() {
        restore
    } else {
        with_behavior
    }
}

fn for_device<'m>(
    manifest: &'m BuildManifest,
    boards: &[&'static Device],
    behavior: RestoreBehavior,
) -> Result<Vec<&'m BuildIdentity>, Finding> {
    let Some(first) = boards.first() else {
        return Ok(customer_identities(manifest, behavior));
    };
    let product_type = first.product_type;
    let supported = manifest
        .supported_product_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case(product_type));
    if !supported {
        return Err(wrong_product_type(manifest, first));
    }
    let mut chosen = Vec::new();
    for board in boards {
        let candidates: Vec<&BuildIdentity> = manifest
            .identities
            .iter()
            .filter(|i| i.matches_board(board.board, board.chip_id, board.board_id))
            .filter(|i| {
                i.product_type
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case(product_type))
            })
            .filter(|i| i.info.behavior().is_some() && !i.info.is_research())
            .collect();
        let pick = candidates
            .iter()
            .find(|i| i.info.behavior() == Some(behavior));
        match (pick, candidates.first()) {
            (Some(identity), _) => chosen.push(*identity),
            // The board is served, but only by the other kind of identity.
            (None, Some(other)) => {
                return Err(Finding::OnlyOtherBehavior {
                    device: format!("{} ({})", board.name, board.product_type),
                    board: board.board.to_owned(),
                    has: other.info.behavior().unwrap_or(RestoreBehavior::Update),
                })
            }
            (None, None) => return Err(missing_board(manifest, board, behavior)),
        }
    }
    Ok(chosen)
}

fn describe(product_type: &str) -> String {
    format!("{} ({product_type})", device::display_name(product_type))
}

fn wrong_product_type(manifest: &BuildManifest, dev: &Device) -> Finding {
    let supported = &manifest.supported_product_types;
    let file_for = if supported.is_empty() {
        "no device (its SupportedProductTypes is empty)".to_owned()
    } else {
        supported
            .iter()
            .map(|t| describe(t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(sibling) = device::sibling_variant(dev, supported) {
        let (model, mine) = device::variant_of(dev.name);
        let (_, theirs) = device::variant_of(&device::display_name(sibling));
        let theirs = theirs.unwrap_or_else(|| "other".into());
        let mine = mine.unwrap_or_else(|| "other".into());
        return Finding::NotForDevice {
            message: format!(
                "this file is for the {theirs} {model} ({sibling}), but your device is the {mine} {model} ({}): same model, different cellular variant ({theirs} vs {mine})",
                dev.product_type
            ),
            hint: format!(
                "get the IPSW for {} ({mine}); the {theirs} file will be refused as \"not compatible\"",
                dev.product_type
            ),
        };
    }
    Finding::NotForDevice {
        message: format!(
            "this file is for {file_for}; your device is the {}",
            describe(dev.product_type)
        ),
        hint: format!(
            "get the IPSW for {}: `ipswcheck signed --device {}` lists the builds Apple still signs",
            dev.product_type, dev.product_type
        ),
    }
}

fn missing_board(manifest: &BuildManifest, dev: &Device, behavior: RestoreBehavior) -> Finding {
    let boards: Vec<String> = restore_identities(manifest)
        .iter()
        .filter_map(|i| i.info.device_class.clone())
        .fold(Vec::new(), |mut acc, b| {
            if !acc.contains(&b) {
                acc.push(b);
            }
            acc
        });
    let kind = match behavior {
        RestoreBehavior::Erase => "restore (Erase)",
        RestoreBehavior::Update => "update (Update)",
    };
    Finding::NotForDevice {
        message: format!(
            "this file lists {} but has no {kind} identity for its board {} (chip 0x{:04X}, \
             board 0x{:02X}); it has identities for: {}",
            dev.product_type,
            dev.board,
            dev.chip_id,
            dev.board_id,
            if boards.is_empty() {
                "no named board".to_owned()
            } else {
                boards.join(", ")
            }
        ),
        hint: format!("get an IPSW built for {} ({})", dev.product_type, dev.board),
    }
}

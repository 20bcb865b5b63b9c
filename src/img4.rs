//! Recognising Apple's firmware containers from their first bytes, and where the
//! bytes that a manifest Digest covers begin and end.
//!
//! FIRMWARE.md §3, verified on real files:
//! - **IM4P** (`SEQUENCE { IA5String "IM4P", IA5String type, IA5String desc, OCTET STRING payload, … }`):
//!   the Digest is the hash of the whole file as stored. Restore* twins hash the same file
//!   after its 4-byte type string has been overwritten (`dtre` → `rdtr`), so we need the
//!   offset of that type string.
//! - **IMG4** (`SEQUENCE { IA5String "IMG4", IM4P, [0] IM4M }`): the Digest covers the
//!   embedded IM4P element only.
//! - **IMG3** (`"3gmI"` little-endian magic, A4–A6): the Digest is SHA-1 of the signed
//!   area `file[0x0C .. 0x14 + u32le(file[0x0C])]` (from idevicerestore's source; no real
//!   IMG3 file was available, so callers also try the whole file and call a double miss
//!   "unverifiable", not "mismatch").
//! - Anything else (DMGs, Savage `.fw`, trust caches without a container) is hashed whole.

/// How many leading bytes [`classify`] needs to see to decide.
pub const HEAD_LEN: usize = 64;

/// The container a component file is in, with the offsets that matter for hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// A bare IM4P; `type_offset` is where its 4-byte payload type sits.
    Im4p {
        type_offset: usize,
        payload_type: [u8; 4],
    },
    /// An IMG4 wrapping an IM4P that spans `im4p_start .. im4p_end`.
    Img4 {
        im4p_start: u64,
        im4p_end: u64,
        type_offset: usize,
        payload_type: [u8; 4],
    },
    /// An IMG3 whose signed area is `signed_start .. signed_end`.
    Img3 { signed_start: u64, signed_end: u64 },
    /// Not a container ipswcheck knows: the Digest covers the whole file.
    Raw,
}

impl Container {
    /// Offset and current value of the payload type that a retag overwrites.
    pub fn payload_type(&self) -> Option<(usize, [u8; 4])> {
        match *self {
            Container::Im4p {
                type_offset,
                payload_type,
            }
            | Container::Img4 {
                type_offset,
                payload_type,
                ..
            } => Some((type_offset, payload_type)),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Container::Im4p { .. } => "IM4P",
            Container::Img4 { .. } => "IMG4",
            Container::Img3 { .. } => "IMG3",
            Container::Raw => "raw",
        }
    }
}

/// Decide the container from the first bytes of a file (at most [`HEAD_LEN`] are read;
/// `total_len` bounds the IMG3 signed area and the IMG4 element).
pub fn classify(head: &[u8], total_len: u64) -> Container {
    if let Some(c) = classify_img3(head, total_len) {
        return c;
    }
    let mut der = Der { buf: head, pos: 0 };
    let Some((0x30, outer_len)) = der.header() else {
        return Container::Raw;
    };
    let outer_body_start = der.pos as u64;
    match der.ia5_4() {
        Some(magic) if &magic == b"IM4P" => match der.type_string() {
            Some((type_offset, payload_type)) => Container::Im4p {
                type_offset,
                payload_type,
            },
            None => Container::Raw,
        },
        Some(magic) if &magic == b"IMG4" => {
            let im4p_start = der.pos as u64;
            let Some((0x30, inner_len)) = der.header() else {
                return Container::Raw;
            };
            let im4p_end = (der.pos as u64).saturating_add(inner_len);
            let outer_end = outer_body_start.saturating_add(outer_len);
            if im4p_end > outer_end || im4p_end > total_len {
                return Container::Raw;
            }
            match (der.ia5_4(), der.type_string()) {
                (Some(m), Some((type_offset, payload_type))) if &m == b"IM4P" => Container::Img4 {
                    im4p_start,
                    im4p_end,
                    type_offset,
                    payload_type,
                },
                _ => Container::Raw,
            }
        }
        _ => Container::Raw,
    }
}

fn classify_img3(head: &[u8], total_len: u64) -> Option<Container> {
    if head.len() < 0x14 || &head[..4] != b"3gmI" {
        return None;
    }
    let sig_check_area = u32::from_le_bytes(head[0x0C..0x10].try_into().ok()?) as u64;
    let signed_end = 0x14u64.checked_add(sig_check_area)?;
    (signed_end <= total_len).then_some(Container::Img3 {
        signed_start: 0x0C,
        signed_end,
    })
}

/// Just enough DER to walk the headers of IM4P/IMG4 (definite lengths up to 4 bytes).
struct Der<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Der<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Tag and content length.
    fn header(&mut self) -> Option<(u8, u64)> {
        let tag = self.byte()?;
        let first = self.byte()?;
        let len = match first {
            0..=0x7f => first as u64,
            0x81..=0x84 => {
                let mut len = 0u64;
                for _ in 0..(first & 0x7f) {
                    len = (len << 8) | self.byte()? as u64;
                }
                len
            }
            _ => return None,
        };
        Some((tag, len))
    }

    /// An IA5String of exactly four bytes.
    fn ia5_4(&mut self) -> Option<[u8; 4]> {
        self.type_string().map(|(_, v)| v)
    }

    /// An IA5String of exactly four bytes, with the offset of its content.
    fn type_string(&mut self) -> Option<(usize, [u8; 4])> {
        match self.header()? {
            (0x16, 4) => {
                let at = self.pos;
                let value: [u8; 4] = self.buf.get(at..at + 4)?.try_into().ok()?;
                self.pos += 4;
                Some((at, value))
            }
            _ => None,
        }
    }
}

/// The payload type idevicerestore gives a Restore* component when the manifest has no
/// `Img4PayloadType` (FIRMWARE.md §3). Manifests from iOS 12 on carry the key itself.
pub fn default_retag(component: &str) -> Option<[u8; 4]> {
    let tag: &[u8; 4] = match component {
        "RestoreKernelCache" => b"rkrn",
        "RestoreDeviceTree" => b"rdtr",
        "RestoreSEP" => b"rsep",
        "RestoreLogo" => b"rlgo",
        "RestoreTrustCache" => b"rtsc",
        "RestoreDCP" => b"rdcp",
        "Ap,RestoreDCP2" => b"rdc2",
        "Ap,RestoreTMU" => b"rtmu",
        "Ap,RestoreCIO" => b"rcio",
        "Ap,DCP2" => b"dcp2",
        "Ap,RestoreSecureM3Firmware" => b"rsm3",
        "Ap,RestoreSecurePageTableMonitor" => b"rspt",
        "Ap,RestoreTrustedExecutionMonitor" => b"rtrx",
        "Ap,RestorecL4" => b"rxcl",
        _ => return None,
    };
    Some(*tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn im4p_head(len_bytes: &[u8], fourcc: &[u8; 4]) -> Vec<u8> {
        let mut v = vec![0x30];
        v.extend_from_slice(len_bytes);
        v.extend_from_slice(&[0x16, 0x04]);
        v.extend_from_slice(b"IM4P");
        v.extend_from_slice(&[0x16, 0x04]);
        v.extend_from_slice(fourcc);
        v
    }

    #[test]
    fn im4p_type_offset_follows_the_length_form() {
        // 0x30 0x83 xx xx xx: the form of the real iPhone X files (type at 13).
        let head = im4p_head(&[0x83, 0x01, 0x00, 0x00], b"dtre");
        assert_eq!(
            classify(&head, 1 << 20),
            Container::Im4p {
                type_offset: 13,
                payload_type: *b"dtre"
            }
        );
        let head = im4p_head(&[0x20], b"krnl");
        assert_eq!(classify(&head, 100).payload_type(), Some((10, *b"krnl")));
    }

    #[test]
    fn img4_points_at_the_embedded_im4p() {
        let im4p = im4p_head(&[0x0A], b"trst");
        let mut img4 = vec![0x30, 0x81, 0x40, 0x16, 0x04];
        img4.extend_from_slice(b"IMG4");
        img4.extend_from_slice(&im4p);
        match classify(&img4, 0x43) {
            Container::Img4 {
                im4p_start,
                im4p_end,
                type_offset,
                payload_type,
            } => {
                assert_eq!(im4p_start, 9);
                assert_eq!(im4p_end, 9 + 2 + 0x0A);
                assert_eq!(&img4[type_offset..type_offset + 4], b"trst");
                assert_eq!(&payload_type, b"trst");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn img3_signed_area_is_bounded_by_the_file() {
        let mut head = b"3gmI".to_vec();
        head.extend_from_slice(&[0; 8]);
        head.extend_from_slice(&0x100u32.to_le_bytes());
        head.extend_from_slice(b"sbiL");
        assert_eq!(
            classify(&head, 0x1000),
            Container::Img3 {
                signed_start: 0x0C,
                signed_end: 0x114
            }
        );
        assert_eq!(classify(&head, 0x50), Container::Raw);
    }

    #[test]
    fn anything_else_is_raw() {
        assert_eq!(classify(b"", 0), Container::Raw);
        assert_eq!(classify(b"koly", 4), Container::Raw);
        assert_eq!(classify(&[0x30, 0xff, 0xff], 3), Container::Raw);
        assert_eq!(classify(&[0x30, 0x84], 2), Container::Raw);
    }

    #[test]
    fn fallback_table_covers_the_restore_twins() {
        assert_eq!(default_retag("RestoreSEP"), Some(*b"rsep"));
        assert_eq!(default_retag("KernelCache"), None);
    }
}

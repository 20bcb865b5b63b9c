//! A plist reader that refuses shapes costing unbounded stack, time or memory (hostile
//! manifests and TSS answers).

use plist::Value;

/// Deepest nesting of arrays and dictionaries a plist may have. Apple's manifests nest
/// 10 deep at most (root → BuildIdentities → identity → Manifest → component → Info →
/// RestoreRequestRules → rule → Conditions → …).
pub const MAX_PLIST_DEPTH: usize = 64;
/// Most values (scalars, keys, and each array or dictionary) a plist may expand to. The
/// largest real manifests in `../shared` (1 MB of XML, iOS 26, four identities) hold
/// about 35,000; manifests for many boards at once run to a few MB, maybe 200,000.
/// Built, a value costs about [`VALUE_COST`] bytes: this cap holds a crafted manifest to
/// about 60 MB at its peak (measured in `tests/memory_bounds.rs`).
pub const MAX_PLIST_VALUES: u64 = 200_000;
/// Most bytes of strings and data a plist may expand to (30× the largest real one).
pub const MAX_PLIST_PAYLOAD: u64 = 8 << 20;
/// What one value costs in memory once built, on average and generously: a `Value` in
/// a dictionary is an index slot, a bucket with its hash, its key `String` and the value
/// (about 80 bytes), plus the key's and any string's heap block with the allocator's
/// overhead.
pub const VALUE_COST: u64 = 128;
/// The most a plist read may cost at its peak, values and payload at their caps (the
/// measured peak of the worst crafted manifests is in README "Robustness").
pub const PARSE_COST_CAP: u64 = MAX_PLIST_VALUES * VALUE_COST + MAX_PLIST_PAYLOAD;

/// Read an XML, binary or ASCII plist into a [`Value`], refusing shapes that would cost
/// unbounded stack, time or memory, with a reason for the report:
///
/// - nesting deeper than [`MAX_PLIST_DEPTH`]: `plist` builds values without recursion,
///   but dropping, cloning or comparing a `Value` recurses once per level, and 100,000
///   nested `<array>`s (700 KB) overflow a thread's stack;
/// - more than [`MAX_PLIST_VALUES`] values or [`MAX_PLIST_PAYLOAD`] bytes of strings
///   and data: a binary plist may reference one object many times, and `plist` expands
///   every reference, so 40 levels of `[x, x]` (a few hundred bytes) would expand to
///   2^40 values.
///
/// - a date `plist` would panic on: one out of the years 0 to 9999, or one in XML
///   written in a form the check made before `plist` reads cannot follow (module `dates`).
///
/// The limits are checked while `plist`'s event stream is consumed (through its serde
/// interface, the only public one), before anything large is built. Dates come back as
/// their XML text and UIDs as integers; no manifest field is either. Used for
/// BuildManifest.plist, Restore.plist and TSS answers.
pub fn read_plist_bounded(bytes: &[u8]) -> Result<Value, String> {
    reader::read(bytes).map(|(value, _)| value)
}

/// [`read_plist_bounded`], also returning what the value costs in memory (values ×
/// [`VALUE_COST`] + bytes of strings and data): what a manifest keeps of the budget
/// ([`crate::budget`]) once parsed.
pub fn read_plist_costed(bytes: &[u8]) -> Result<(Value, u64), String> {
    reader::read(bytes)
}

/// A manifest's share of [`crate::budget`], held as long as any copy of the manifest
/// lives. Equal to every other (it is bookkeeping, not content).
#[derive(Clone)]
pub struct MemoryHold(#[allow(dead_code)] std::sync::Arc<crate::budget::Ticket>);

impl MemoryHold {
    pub fn new(ticket: crate::budget::Ticket) -> MemoryHold {
        MemoryHold(std::sync::Arc::new(ticket))
    }
}

impl std::fmt::Debug for MemoryHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryHold({})", self.0.bytes())
    }
}

impl PartialEq for MemoryHold {
    fn eq(&self, _: &MemoryHold) -> bool {
        true
    }
}

/// Dates `plist` cannot hand on, refused before it sees them.
///
/// `plist` (1.10) gives every date to a serde visitor as RFC 3339 text
/// (`Date::to_xml_format`), and that formatting unwraps: a date that falls before the
/// year 0 or after 9999 in UTC panics (`plist/src/date.rs:42`; found by the
/// `binary_plist` fuzz target). A panic is not a refusal — it would end the check, and
/// libFuzzer aborts even on a caught one — so such dates are found here first:
///
/// - binary (`bplist00`): a date object (marker `0x33`) holds an `f64` of seconds since
///   2001-01-01 UTC. `plist` refuses NaN, infinities and instants its date library
///   cannot hold (beyond the years ±9999) with an error, and panics on those between
///   -9999 and the year 0. Every object the offset table names is looked at, exactly as
///   `plist` finds them (trailer, offset sizes, table bounds); one whose seconds are not
///   within `FIRST_SECOND..END_SECOND` is refused. Linear in the file's size, with
///   no allocation;
/// - XML: a `<date>` holds RFC 3339 text with a four-digit year (0000 to 9999) and an
///   offset of less than a day; `plist` converts it to UTC, which leaves the years 0 to
///   9999 only from the first day of 0000 (a positive offset) or the last of 9999 (a
///   negative one), and then panics converting or formatting it. The check follows
///   `quick-xml`'s rules where they matter (a tag's name ends at whitespace or `>`; a
///   date's text is everything up to its end tag) and is conservative where they are
///   subtle: a `<date>` whose tag holds quotes, or whose text holds markup (a comment,
///   CDATA, another tag) or an entity or character reference, is refused rather than
///   interpreted; so is a date in the year 0000 or 9999 with an offset other than zero.
///   Every `<` is looked at, inside comments and attributes too, so nothing `quick-xml`
///   reads as a date escapes it; linear in the file's size.
///
/// No real manifest, Restore.plist or TSS answer holds a date at all (BuildManifests
/// have none); the tests run every plist in `../shared` through this reader.
mod dates {
    /// 0000-01-01T00:00:00Z in seconds since 2001-01-01T00:00:00Z (the epoch of binary
    /// plist dates): 719,528 days before 1970 plus the 978,307,200 s from 1970 to 2001.
    pub(super) const FIRST_SECOND: f64 = -63_145_526_400.0;
    /// 10000-01-01T00:00:00Z likewise (2,932,897 days after 1970): the first instant
    /// RFC 3339 cannot write.
    pub(super) const END_SECOND: f64 = 252_423_993_600.0;

    /// Refuse `bytes` (a plist, binary or not) if it holds a date `plist` would panic on.
    pub(super) fn check(bytes: &[u8]) -> Result<(), String> {
        // `plist`'s own test for a binary plist.
        if bytes.starts_with(b"bplist00") {
            binary(bytes)
        } else {
            xml(bytes)
        }
    }

    /// Every date object the offset table of a binary plist names. Where `plist` would
    /// fail before reading objects (a trailer or table it refuses), nothing is checked.
    fn binary(bytes: &[u8]) -> Result<(), String> {
        let Some(trailer_at) = bytes.len().checked_sub(32) else {
            return Ok(());
        };
        let trailer = &bytes[trailer_at..];
        let offset_size = usize::from(trailer[6]);
        if !matches!(offset_size, 1 | 2 | 3 | 4 | 8) || !matches!(trailer[7], 1 | 2 | 3 | 4 | 8) {
            return Ok(());
        }
        let be = |b: &[u8]| b.iter().fold(0u64, |n, b| n << 8 | u64::from(*b));
        let (count, table) = (be(&trailer[8..16]), be(&trailer[24..32]));
        // `plist` refuses an offset table that does not end before the trailer.
        let table_end = count
            .checked_mul(offset_size as u64)
            .and_then(|n| n.checked_add(table))
            .filter(|end| *end <= trailer_at as u64);
        let Some(table_end) = table_end else {
            return Ok(());
        };
        for entry in bytes[table as usize..table_end as usize].chunks_exact(offset_size) {
            let at = be(entry);
            // An object at or past the trailer is refused by `plist` if it is read.
            if at >= trailer_at as u64 || bytes[at as usize] != 0x33 {
                continue;
            }
            let at = at as usize;
            let Some(raw) = bytes.get(at + 1..at + 9) else {
                continue; // cut off: a read error in `plist`
            };
            let secs = f64::from_bits(be(raw));
            if !(FIRST_SECOND..END_SECOND).contains(&secs) {
                return Err(format!(
                    "it holds a date out of range ({secs} s from 2001-01-01; a plist date \
                     must fall in the years 0 to 9999)"
                ));
            }
        }
        Ok(())
    }

    /// Every `<date>` of an XML plist (and anything that might be read as one).
    fn xml(bytes: &[u8]) -> Result<(), String> {
        let odd = || {
            "it holds a <date> with quotes in its tag, or markup or references in its text, \
             which ipswcheck does not read (a crafted plist?)"
                .to_owned()
        };
        let find = |from: usize, what: &dyn Fn(u8) -> bool| {
            bytes[from..]
                .iter()
                .position(|b| what(*b))
                .map(|n| from + n)
        };
        let mut at = 0;
        while let Some(open) = find(at, &|b| b == b'<') {
            // The tag's name, as quick-xml reads it: up to whitespace or `>`. A `<` inside
            // it begins no tag; the names it would begin are suffixes of this one.
            let start = open + 1;
            let name_end = find(start, &|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'>'))
                .unwrap_or(bytes.len());
            at = name_end;
            let name = &bytes[start..name_end];
            let name = name.strip_suffix(b"/").unwrap_or(name);
            // `date`, or a prefixed `p:date` (quick-xml's local name).
            if name != b"date" && !name.ends_with(b":date") && !name.ends_with(b"<date") {
                continue;
            }
            let Some(close) = find(name_end, &|b| b == b'>') else {
                return Ok(()); // a tag never closed: quick-xml fails, no date is read
            };
            if bytes[start..close]
                .iter()
                .any(|b| matches!(b, b'"' | b'\''))
            {
                return Err(odd());
            }
            at = close + 1;
            if bytes[close - 1] == b'/' {
                continue; // `<date/>`: an empty date, which `plist` fails to parse
            }
            let Some(text_end) = find(at, &|b| b == b'<') else {
                return Ok(()); // never closed: `plist` fails
            };
            let text = &bytes[at..text_end];
            at = text_end;
            if bytes.get(text_end + 1) != Some(&b'/') || text.contains(&b'&') {
                return Err(odd());
            }
            let text = text.trim_ascii();
            let utc = [&b"Z"[..], b"z", b"+00:00", b"-00:00"]
                .iter()
                .any(|end| text.ends_with(end));
            if (text.starts_with(b"0000") || text.starts_with(b"9999")) && !utc {
                let shown = String::from_utf8_lossy(&text[..text.len().min(40)]);
                return Err(format!(
                    "it holds a date out of range ({shown:?}: with its offset it may fall \
                     outside the years 0 to 9999)"
                ));
            }
        }
        Ok(())
    }
}

/// The serde visitor that counts and refuses while `plist` parses.
mod reader {
    use std::cell::{Cell, RefCell};
    use std::fmt;

    use plist::{Dictionary, Value};
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::{MAX_PLIST_DEPTH, MAX_PLIST_PAYLOAD, MAX_PLIST_VALUES, VALUE_COST};

    thread_local! {
        /// Why the last read on this thread was refused (plist's own error text would
        /// wrap ours in its debug formatting).
        static REFUSED: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    pub(super) fn read(bytes: &[u8]) -> Result<(Value, u64), String> {
        super::dates::check(bytes)?;
        REFUSED.with(|r| r.borrow_mut().take());
        match plist::from_bytes::<Root>(bytes) {
            Ok(Root(value, cost)) => Ok((value, cost)),
            Err(e) => Err(REFUSED
                .with(|r| r.borrow_mut().take())
                .unwrap_or_else(|| e.to_string())),
        }
    }

    struct Root(Value, u64);

    impl<'de> serde::Deserialize<'de> for Root {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let budget = Budget::default();
            let value = Seed {
                budget: &budget,
                depth: 0,
            }
            .deserialize(d)?;
            let cost = budget.values.get() * VALUE_COST + budget.payload.get();
            Ok(Root(value, cost))
        }
    }

    #[derive(Default)]
    struct Budget {
        values: Cell<u64>,
        payload: Cell<u64>,
    }

    fn refuse<E: de::Error>(reason: String) -> E {
        REFUSED.with(|r| *r.borrow_mut() = Some(reason.clone()));
        E::custom(reason)
    }

    impl Budget {
        fn charge<E: de::Error>(&self, payload: usize) -> Result<(), E> {
            self.values.set(self.values.get() + 1);
            self.payload.set(self.payload.get() + payload as u64);
            if self.values.get() > MAX_PLIST_VALUES {
                return Err(refuse(format!(
                    "it expands to more than {MAX_PLIST_VALUES} values (a crafted plist?)"
                )));
            }
            if self.payload.get() > MAX_PLIST_PAYLOAD {
                return Err(refuse(format!(
                    "its strings and data expand to more than {MAX_PLIST_PAYLOAD} bytes (a crafted plist?)"
                )));
            }
            Ok(())
        }
    }

    #[derive(Clone, Copy)]
    struct Seed<'b> {
        budget: &'b Budget,
        depth: usize,
    }

    impl Seed<'_> {
        fn nested<E: de::Error>(self) -> Result<Self, E> {
            self.budget.charge(0)?;
            if self.depth >= MAX_PLIST_DEPTH {
                return Err(refuse(format!(
                    "it nests arrays and dictionaries more than {MAX_PLIST_DEPTH} deep"
                )));
            }
            Ok(Seed {
                budget: self.budget,
                depth: self.depth + 1,
            })
        }
    }

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a plist value")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            self.budget.charge(0)?;
            Ok(Value::Boolean(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            self.budget.charge(0)?;
            Ok(Value::Integer(v.into()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            self.budget.charge(0)?;
            Ok(Value::Integer(v.into()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            self.budget.charge(0)?;
            Ok(Value::Real(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
            self.budget.charge(v.len())?;
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
            self.budget.charge(v.len())?;
            Ok(Value::String(v))
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
            self.budget.charge(v.len())?;
            Ok(Value::Data(v.to_vec()))
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
            self.budget.charge(v.len())?;
            Ok(Value::Data(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let inner = self.nested()?;
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(inner)? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let inner = self.nested()?;
            let mut dict = Dictionary::new();
            while let Some(key) = map.next_key::<String>()? {
                inner.budget.charge(key.len())?;
                let value = map.next_value_seed(inner)?;
                dict.insert(key, value);
            }
            Ok(Value::Dictionary(dict))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dates::{END_SECOND, FIRST_SECOND};
    use super::*;

    /// A binary plist whose one object, the top, is a date of `secs` seconds from 2001.
    fn binary_date(secs: f64) -> Vec<u8> {
        let mut out = b"bplist00".to_vec();
        out.push(0x33);
        out.extend_from_slice(&secs.to_bits().to_be_bytes());
        let table = out.len() as u64;
        out.push(8);
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 1]);
        out.extend_from_slice(&1u64.to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&table.to_be_bytes());
        out
    }

    fn xml_date(text: &str) -> Vec<u8> {
        format!("<plist version=\"1.0\"><dict><key>d</key><date>{text}</date></dict></plist>")
            .into_bytes()
    }

    #[test]
    fn binary_dates_out_of_range_are_refused_before_plist_sees_them() {
        // NaN, infinities and 1e300 (which plist refuses itself), and the years -1 and
        // -9999 (on which plist 1.10 panicked): refused, with the reason.
        for secs in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1e300,
            FIRST_SECOND - 1.0,
            -378_683_424_000.0,
            END_SECOND,
        ] {
            let err = read_plist_costed(&binary_date(secs)).unwrap_err();
            assert!(err.contains("a date out of range"), "{secs}: {err}");
            assert!(read_plist_bounded(&binary_date(secs)).is_err(), "{secs}");
        }
        // A date in 2020, and the first and last instants RFC 3339 can write.
        for (secs, text) in [
            (631_152_000.0, "2021-01-01T00:00:00Z"),
            (FIRST_SECOND, "0000-01-01T00:00:00Z"),
            (END_SECOND - 1.0, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(
                read_plist_bounded(&binary_date(secs)).unwrap(),
                Value::String(text.into())
            );
        }
    }

    #[test]
    fn a_date_written_by_plist_itself_is_read() {
        // 2020-06-01T12:00:00Z, inside a dictionary, as plist's own writer lays it out.
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_591_012_800);
        let mut dict = plist::Dictionary::new();
        dict.insert("Date".into(), Value::Date(when.into()));
        dict.insert("Name".into(), "x".into());
        let mut bin = Vec::new();
        Value::Dictionary(dict).to_writer_binary(&mut bin).unwrap();
        let read = read_plist_bounded(&bin).unwrap();
        assert_eq!(
            read.as_dictionary().unwrap()["Date"],
            Value::String("2020-06-01T12:00:00Z".into())
        );
    }

    #[test]
    fn xml_dates_that_leave_the_years_0_to_9999_are_refused() {
        // In UTC these are in the years -1 and 10000: plist 1.10 panicked on both.
        for text in ["0000-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00"] {
            let err = read_plist_bounded(&xml_date(text)).unwrap_err();
            assert!(err.contains("a date out of range"), "{text}: {err}");
        }
        for text in [
            "2020-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2020-01-01T12:00:00+02:00",
        ] {
            assert!(read_plist_bounded(&xml_date(text)).is_ok(), "{text}");
        }
        // A prefixed name is a date to quick-xml too.
        let prefixed = b"<plist><p:date>0000-01-01T00:00:00+01:00</p:date></plist>";
        assert!(read_plist_bounded(prefixed).is_err());
    }

    #[test]
    fn xml_dates_the_check_cannot_follow_are_refused() {
        // quick-xml skips comments and drops unknown entities inside a date's text, so
        // these read as the panicking date above; they are refused unread.
        for text in [
            "0000-01-01T00:00:00<!-- x -->+01:00",
            "0000-01-01T00:00:00&x;+01:00",
            "&#48;000-01-01T00:00:00+01:00",
        ] {
            let err = read_plist_bounded(&xml_date(text)).unwrap_err();
            assert!(err.contains("does not read"), "{text}: {err}");
        }
        let quoted = b"<plist><date a=\">\">0000-01-01T00:00:00+01:00</date></plist>";
        assert!(read_plist_bounded(quoted)
            .unwrap_err()
            .contains("does not read"));
        // Empty, unclosed or malformed dates: plist's own answer (an error, or the ASCII
        // reader's string when the XML reader fails at once), never a panic.
        for bytes in [
            &b"<plist><date/></plist>"[..],
            b"<plist><date>0000-01-01T00:00:00+01:00",
            b"<plist><dict><key>d</key><date>not a date</date></dict></plist>",
        ] {
            let read = read_plist_bounded(bytes);
            assert!(!matches!(read, Ok(Value::Dictionary(_))), "{read:?}");
        }
    }

    #[test]
    fn the_date_check_is_linear_in_a_hostile_file() {
        // Many `<` without a name's end, and many date-like names: one pass each.
        let lts = vec![b'<'; 4 << 20];
        let _ = read_plist_bounded(&lts);
        let names = "<x:date>2020-01-01T00:00:00Z</x:date>".repeat(100_000);
        let started = std::time::Instant::now();
        let _ = read_plist_bounded(format!("<plist><array>{names}</array></plist>").as_bytes());
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}

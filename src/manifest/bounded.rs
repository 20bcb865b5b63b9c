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
    // plist 1.10 panics on a binary date outside chrono's range (`date.rs`, found by the
    // `binary_plist` fuzz target): a crafted manifest must be a refused plist, not a crash.
    std::panic::catch_unwind(|| reader::read(bytes))
        .unwrap_or_else(|_| Err("the plist could not be read (a malformed date?)".to_owned()))
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

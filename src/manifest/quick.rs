//! A fast reader for XML property lists, the form every real `BuildManifest.plist` takes.
//!
//! `--quick` reads no entry data: its time is process start, the zip directory and the
//! manifest, and the manifest was nearly all of it (13 ms for the 1 MB iOS 26 manifest,
//! through `plist`'s general XML reader at about 55 MB/s). Apple's manifests use a small,
//! regular subset of XML: a prolog, `<plist>`, and the elements `dict`, `key`, `array`,
//! `string`, `data`, `integer`, `real`, `true`, `false`, with the five predefined
//! entities. This reader handles exactly that subset in one pass over the bytes, with no
//! recursion, and builds the same [`Value`] the full reader ([`super::read_plist_bounded`])
//! builds: [`super::BuildManifest::from_bytes`] then extracts fields from it unchanged.
//!
//! Anything outside the subset (a `<date>`, CDATA, a DOCTYPE with an internal subset,
//! hex integers, attributes, a carriage return in text, a bound reached) makes it answer
//! `None`, and the caller reads the file with the full reader, which parses or refuses it
//! with its own reason. So this reader can only be faster, never different: the tests
//! compare both readers on every real manifest in `../shared`.
//!
//! Bounded like the full reader: nesting at most [`MAX_PLIST_DEPTH`] (an explicit
//! stack, so even a hostile file never touches the thread's stack), at most
//! [`MAX_PLIST_VALUES`] values and [`MAX_PLIST_PAYLOAD`] bytes of strings and data; XML
//! has no shared references, so nothing expands beyond the input.

use plist::{Dictionary, Value};

use super::{MAX_PLIST_DEPTH, MAX_PLIST_PAYLOAD, MAX_PLIST_VALUES, VALUE_COST};

/// The plist in `bytes`, when it is XML in the subset Apple writes; `None` otherwise
/// (read it with [`super::read_plist_bounded`]).
pub fn read_xml_plist(bytes: &[u8]) -> Option<Value> {
    read_xml_plist_costed(bytes).map(|(value, _)| value)
}

/// [`read_xml_plist`] with the value's cost as the full reader counts it
/// ([`super::read_plist_costed`]): what the manifest keeps of the memory budget.
pub(crate) fn read_xml_plist_costed(bytes: &[u8]) -> Option<(Value, u64)> {
    Reader {
        bytes,
        at: 0,
        values: 0,
        payload: 0,
    }
    .read()
}

/// An open container. A dictionary collects its pairs in a `Vec` and becomes a
/// [`Dictionary`] (an `IndexMap`) once, at its end tag, sized exactly: growing thousands
/// of small maps key by key was a third of the reader's time.
enum Frame {
    Array(Vec<Value>),
    Dict(Vec<(String, Value)>, Option<String>),
}

struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
    values: u64,
    payload: u64,
}

impl Reader<'_> {
    fn read(mut self) -> Option<(Value, u64)> {
        if self.bytes.starts_with(b"\xEF\xBB\xBF") {
            self.at = 3;
        }
        // Prolog: `<?xml …?>`, comments, `<!DOCTYPE plist …>`, then `<plist …>`.
        loop {
            self.skip_space();
            let rest = &self.bytes[self.at..];
            if rest.starts_with(b"<?") {
                self.at += find(rest, b"?>")? + 2;
            } else if rest.starts_with(b"<!--") {
                self.at += find(rest, b"-->")? + 3;
            } else if rest.starts_with(b"<!DOCTYPE") {
                let end = find(rest, b">")?;
                if rest[..end].contains(&b'[') {
                    return None;
                }
                self.at += end + 1;
            } else if rest.starts_with(b"<plist") {
                let end = find(rest, b">")?;
                if rest[end - 1] == b'/' {
                    return None;
                }
                self.at += end + 1;
                break;
            } else {
                return None;
            }
        }
        let mut stack: Vec<Frame> = Vec::new();
        let mut root: Option<Value> = None;
        loop {
            self.skip_space();
            let rest = &self.bytes[self.at..];
            if rest.first() != Some(&b'<') {
                return None;
            }
            if rest.starts_with(b"<!--") {
                self.at += find(rest, b"-->")? + 3;
                continue;
            }
            let end = find(rest, b">")?;
            let tag = &rest[1..end];
            self.at += end + 1;
            let (closing, name, empty) = match tag {
                [b'/', name @ ..] => (true, name, false),
                [name @ .., b'/'] => (false, name, true),
                name => (false, name, false),
            };
            if name.is_empty() || name.iter().any(|b| !b.is_ascii_alphabetic()) {
                return None; // attributes, or not an element Apple writes
            }
            if closing {
                let value = match (name, stack.pop()?) {
                    (b"array", Frame::Array(items)) => Value::Array(items),
                    (b"dict", Frame::Dict(pairs, None)) => {
                        // `collect` inserts in order: a repeated key keeps its first
                        // place and its last value, as `Dictionary::insert` does.
                        Value::Dictionary(pairs.into_iter().collect())
                    }
                    (b"plist", frame) => {
                        stack.push(frame);
                        return None;
                    }
                    _ => return None,
                };
                self.put(&mut stack, &mut root, value)?;
                if stack.is_empty() {
                    return self.finish(root);
                }
                continue;
            }
            if name == b"plist" {
                return None;
            }
            self.count(0)?;
            let value = match (name, empty) {
                (b"dict", false) => {
                    if stack.len() >= MAX_PLIST_DEPTH {
                        return None;
                    }
                    stack.push(Frame::Dict(Vec::new(), None));
                    continue;
                }
                (b"array", false) => {
                    if stack.len() >= MAX_PLIST_DEPTH {
                        return None;
                    }
                    stack.push(Frame::Array(Vec::new()));
                    continue;
                }
                (b"dict", true) => Value::Dictionary(Dictionary::new()),
                (b"array", true) => Value::Array(Vec::new()),
                (b"true", true) => Value::Boolean(true),
                (b"false", true) => Value::Boolean(false),
                (b"key", false) => {
                    let key = self.text(b"key")?;
                    match stack.last_mut() {
                        Some(Frame::Dict(_, pending @ None)) => *pending = Some(key),
                        _ => return None,
                    }
                    continue;
                }
                (b"key", true) => {
                    match stack.last_mut() {
                        Some(Frame::Dict(_, pending @ None)) => *pending = Some(String::new()),
                        _ => return None,
                    }
                    continue;
                }
                (b"string", false) => Value::String(self.text(b"string")?),
                (b"string", true) => Value::String(String::new()),
                (b"data", false) => {
                    let raw = self.raw(b"data")?;
                    let data = base64(raw)?;
                    self.count(data.len())?;
                    Value::Data(data)
                }
                (b"data", true) => Value::Data(Vec::new()),
                (b"integer", false) => {
                    let raw = std::str::from_utf8(self.raw(b"integer")?).ok()?.trim();
                    let digits = raw.strip_prefix('-').unwrap_or(raw);
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    if raw.starts_with('-') {
                        Value::Integer(raw.parse::<i64>().ok()?.into())
                    } else {
                        Value::Integer(raw.parse::<u64>().ok()?.into())
                    }
                }
                (b"real", false) => {
                    let raw = std::str::from_utf8(self.raw(b"real")?).ok()?.trim();
                    if !raw.bytes().all(|b| {
                        b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')
                    }) {
                        return None;
                    }
                    Value::Real(raw.parse::<f64>().ok()?)
                }
                _ => return None,
            };
            self.put(&mut stack, &mut root, value)?;
            if stack.is_empty() {
                return self.finish(root);
            }
        }
    }

    /// The one value of the plist is read: only `</plist>` (and space) may follow.
    fn finish(&mut self, root: Option<Value>) -> Option<(Value, u64)> {
        self.skip_space();
        let rest = self.bytes[self.at..].strip_prefix(b"</plist>")?;
        if rest.iter().any(|b| !b.is_ascii_whitespace()) {
            return None;
        }
        Some((root?, self.values * VALUE_COST + self.payload))
    }

    /// Add a finished value to the open container, or make it the root.
    fn put(&mut self, stack: &mut [Frame], root: &mut Option<Value>, value: Value) -> Option<()> {
        match stack.last_mut() {
            Some(Frame::Array(items)) => items.push(value),
            Some(Frame::Dict(pairs, pending)) => {
                let key = pending.take()?;
                pairs.push((key, value));
            }
            None if root.is_none() => *root = Some(value),
            None => return None,
        }
        Some(())
    }

    /// Charge one value and `payload` bytes against the bounds.
    fn count(&mut self, payload: usize) -> Option<()> {
        self.values += 1;
        self.payload += payload as u64;
        (self.values <= MAX_PLIST_VALUES && self.payload <= MAX_PLIST_PAYLOAD).then_some(())
    }

    fn skip_space(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    /// The bytes up to `</name>` (which is consumed); no markup inside.
    fn raw(&mut self, name: &[u8]) -> Option<&[u8]> {
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == b'<')?;
        let close = &rest[end..];
        if close.get(1) != Some(&b'/')
            || !close[2..].starts_with(name)
            || close.get(2 + name.len()) != Some(&b'>')
        {
            return None;
        }
        self.at += end + 3 + name.len();
        Some(&rest[..end])
    }

    /// The text of an element up to `</name>`, entities replaced.
    fn text(&mut self, name: &[u8]) -> Option<String> {
        let raw = self.raw(name)?;
        if raw.contains(&b'\r') {
            return None; // XML would normalise line ends; leave it to the full reader
        }
        let text = std::str::from_utf8(raw).ok()?;
        let out = if text.contains('&') {
            unescape(text)?
        } else {
            text.to_owned()
        };
        self.count(out.len())?;
        Some(out)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [one] => hay.iter().position(|b| b == one),
        _ => hay.windows(needle.len()).position(|w| w == needle),
    }
}

/// The five predefined entities and character references.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let semi = after.find(';')?;
        let entity = &after[..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    entity.strip_prefix('#')?.parse().ok()?
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Standard base64 with padding, whitespace ignored (as plist data is written).
fn base64(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    let mut pad = 0;
    for &b in raw {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b if b.is_ascii_whitespace() => continue,
            _ => return None,
        };
        if pad > 0 {
            return None; // data after padding
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be the zero padding of a well-formed encoding.
    if pad > 2 || bits >= 6 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::read_plist_bounded;

    fn both(xml: &str) -> (Option<Value>, Result<Value, String>) {
        (
            read_xml_plist(xml.as_bytes()),
            read_plist_bounded(xml.as_bytes()),
        )
    }

    #[test]
    fn agrees_with_the_full_reader_on_every_value_kind() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<!-- a comment -->
	<key>A &amp; B</key>
	<string> spaced &lt;text&gt; &#233;&#x263A; </string>
	<key>Data</key>
	<data>
	AAEC/w==
	</data>
	<key>Empty</key><string/>
	<key>EmptyData</key><data></data>
	<key>N</key><integer>-42</integer>
	<key>U</key><integer>18446744073709551615</integer>
	<key>R</key><real>1.5</real>
	<key>T</key><true/>
	<key>F</key><false/>
	<key>List</key><array><string>x</string><dict/><array/></array>
	<key>Dup</key><string>first</string>
	<key>Dup</key><string>second</string>
</dict>
</plist>
"#;
        let (quick, full) = both(xml);
        assert_eq!(quick.expect("in the subset"), full.unwrap());
    }

    #[test]
    fn declines_what_it_does_not_read_exactly() {
        for xml in [
            "<plist><dict><key>d</key><date>2020-01-01T00:00:00Z</date></dict></plist>",
            "<plist><string><![CDATA[x]]></string></plist>",
            "<plist><integer>0x10</integer></plist>",
            "<plist><string>a\r\nb</string></plist>",
            "<plist><dict><key a=\"1\">k</key><true/></dict></plist>",
            "<plist><string>&bogus;</string></plist>",
            "<plist><data>!!!!</data></plist>",
            "<plist><dict><key>k</key></dict></plist>",
            "<plist><string>x</string><string>y</string></plist>",
            "<plist><string>x</string></plist>trailing",
            "bplist00",
            "",
        ] {
            assert!(read_xml_plist(xml.as_bytes()).is_none(), "{xml}");
        }
    }

    #[test]
    fn deep_or_huge_input_is_declined_without_recursion() {
        let deep = format!(
            "<plist>{}{}</plist>",
            "<array>".repeat(200_000),
            "</array>".repeat(200_000)
        );
        assert!(read_xml_plist(deep.as_bytes()).is_none());
        let within = format!(
            "<plist>{}{}</plist>",
            "<array>".repeat(MAX_PLIST_DEPTH),
            "</array>".repeat(MAX_PLIST_DEPTH)
        );
        assert!(read_xml_plist(within.as_bytes()).is_some());
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(base64(b"AAEC/w=="), Some(vec![0, 1, 2, 255]));
        assert_eq!(base64(b"TWFu"), Some(b"Man".to_vec()));
        assert_eq!(base64(b"TW E="), Some(b"Ma".to_vec()));
        assert_eq!(base64(b"A=A="), None);
    }
}

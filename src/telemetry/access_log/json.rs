//! The JSON side of the access log: reading a `json_format` object with its keys in the
//! order written (serde_json's `Map` sorts them unless a feature is on), and escaping
//! values so every line is valid JSON whatever bytes a client sent.

use super::digits::push_i64;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A JSON value whose objects keep their keys' order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// Parses a JSON object; anything else, a duplicate key or a syntax error is an error
/// saying where.
pub fn parse_object(text: &str) -> Result<Vec<(String, Node)>, String> {
    match serde_json::from_str::<Node>(text) {
        Ok(Node::Object(fields)) => Ok(fields),
        Ok(_) => Err("the JSON format is not a JSON object".into()),
        Err(e) => Err(format!("the JSON format is not valid JSON: {e}")),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        serde_json::Number::from_f64(v)
            .map(Node::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element()? {
            items.push(n);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields: Vec<(String, Node)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value()?;
            fields.push((key, value));
        }
        Ok(Node::Object(fields))
    }
}

/// Appends a number from the config as Envoy writes it: Envoy holds numbers as doubles,
/// so `1.0` is written `1`.
pub fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            push_i64(out, f as i64);
            return;
        }
    }
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Appends `s` escaped for the inside of a JSON string (no quotes): `"`, `\` and control
/// characters escaped (`\n`, `\u001f`, ...) as Envoy's sanitizer does; valid UTF-8 is
/// kept; each byte that is not UTF-8 (a raw header byte) becomes `\u00XX`, so the line
/// stays valid JSON where Envoy would fall back to octal escapes that are not.
pub fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    if is_plain(s) {
        out.extend_from_slice(s);
        return;
    }
    for chunk in s.utf8_chunks() {
        escape_valid(chunk.valid().as_bytes(), out);
        for &b in chunk.invalid() {
            push_unicode_escape(out, b);
        }
    }
}

/// Bytes written as they are in any context: printable ASCII but `"` and `\\`, and DEL
/// (kept by the escaping, as Envoy).
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x80 {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

/// Whether `s` is all [`PLAIN`] bytes, so written unchanged: eight bytes at a time.
#[inline]
fn is_plain(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `w` has its high bit set, is below 0x20, or is `"` or `\\`: with no high
    // bit set, subtracting borrows into a byte's high bit exactly when some byte is
    // below the subtrahend (Mycroft's zero-byte test; a false alarm only follows a true
    // one, so none when none is there).
    let special = |w: u64| {
        let below_space = w.wrapping_sub(ONES * 0x20);
        let quote = (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
        let backslash = (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
        (w | below_space | quote | backslash) & HIGH != 0
    };
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
    if s.len() < 8 {
        return s.iter().all(|&b| PLAIN[usize::from(b)]);
    }
    let mut words = s.chunks_exact(8);
    if words.any(|w| special(word(w))) {
        return false;
    }
    // The last bytes: the last eight, some seen already.
    words.remainder().is_empty() || !special(word(&s[s.len() - 8..]))
}

fn escape_valid(s: &[u8], out: &mut Vec<u8>) {
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if b >= 0x80 || PLAIN[usize::from(b)] {
            continue;
        }
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&s[run..i]);
        if esc.is_empty() {
            push_unicode_escape(out, b);
        } else {
            out.extend_from_slice(esc);
        }
        run = i + 1;
    }
    out.extend_from_slice(&s[run..]);
}

fn push_unicode_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u00");
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escaped_values_parse_back() {
        assert_eq!(esc(b"plain /p?q=1"), "plain /p?q=1");
        assert_eq!(esc(b"a\"b\\c\n\t\x01"), r#"a\"b\\c\n\t\u0001"#);
        assert_eq!(esc("é✓".as_bytes()), "é✓", "valid UTF-8 is kept");
        assert_eq!(
            esc(b"x\xffy\xc3"),
            r"x\u00ffy\u00c3",
            "each stray byte escaped"
        );
        for s in [
            &b"\"\\\x00\x1f\x7f"[..],
            b"\xe2\x9c",
            "é\u{2028}".as_bytes(),
        ] {
            let line = format!("\"{}\"", esc(s));
            assert!(serde_json::from_str::<String>(&line).is_ok(), "{line}");
        }
    }

    /// An independent statement of the escaping: per character of the valid UTF-8,
    /// per byte of the rest.
    fn reference(s: &[u8]) -> String {
        let mut out = String::new();
        for chunk in s.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\u{b:04x}"));
            }
        }
        out
    }

    #[test]
    fn every_byte_is_escaped_exactly() {
        let controls = [
            r"\u0000", r"\u0001", r"\u0002", r"\u0003", r"\u0004", r"\u0005", r"\u0006", r"\u0007",
            r"\b", r"\t", r"\n", r"\u000b", r"\f", r"\r", r"\u000e", r"\u000f", r"\u0010",
            r"\u0011", r"\u0012", r"\u0013", r"\u0014", r"\u0015", r"\u0016", r"\u0017", r"\u0018",
            r"\u0019", r"\u001a", r"\u001b", r"\u001c", r"\u001d", r"\u001e", r"\u001f",
        ];
        for b in 0..=255u8 {
            let want = match b {
                0..=0x1f => controls[usize::from(b)].to_owned(),
                b'"' => r#"\""#.to_owned(),
                b'\\' => r"\\".to_owned(),
                0x20..=0x7f => char::from(b).to_string(),
                _ => format!(r"\u00{b:02x}"),
            };
            assert_eq!(esc(&[b]), want, "byte {b:#x}");
            assert_eq!(reference(&[b]), want, "byte {b:#x}");
        }
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(esc(&[a, b]), reference(&[a, b]), "{a:#x} {b:#x}");
            }
        }
    }

    #[test]
    fn escaping_at_every_position() {
        assert_eq!(esc(b""), "");
        assert_eq!(
            esc(b"outbound|80||upstream.bench.internal"),
            "outbound|80||upstream.bench.internal"
        );
        assert_eq!(
            esc(b"~ !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}\x7f"),
            "~ !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}\x7f"
        );
        assert_eq!(esc(b"\"quoted\" \\path\\"), r#"\"quoted\" \\path\\"#);
        assert_eq!(
            esc(b"line1\r\nline2\x00\x1b[0m"),
            r"line1\r\nline2\u0000\u001b[0m"
        );
        assert_eq!(esc("Grüße 日本 🦀".as_bytes()), "Grüße 日本 🦀");
        assert_eq!(
            esc("\u{2028}\u{85}".as_bytes()),
            "\u{2028}\u{85}",
            "kept, as Envoy"
        );
        assert_eq!(
            esc(b"\xf0\x9f\xa6"),
            r"\u00f0\u009f\u00a6",
            "a cut character"
        );
        assert_eq!(esc(b"\xed\xa0\x80"), r"\u00ed\u00a0\u0080", "a surrogate");
        assert_eq!(esc(b"\xc0\xaf"), r"\u00c0\u00af", "an overlong form");
        let specials: [&[u8]; 12] = [
            b"\"",
            b"\\",
            b"\n",
            b"\x00",
            b"\x1f",
            b"\x7f",
            b"\x80",
            b"\xff",
            "é".as_bytes(),
            "日".as_bytes(),
            "🦀".as_bytes(),
            b"\xe6\x97",
        ];
        for len in 0..40 {
            for at in 0..=len {
                for sp in specials {
                    let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    s.splice(at..at, sp.iter().copied());
                    assert_eq!(esc(&s), reference(&s), "{s:?}");
                    let mut appended = b"prefix ".to_vec();
                    escape_into(&s, &mut appended);
                    assert_eq!(appended, [b"prefix ", reference(&s).as_bytes()].concat());
                }
            }
        }
    }

    #[test]
    fn objects_keep_their_order() {
        let o = parse_object(r#"{"z": "1", "a": {"y": 2, "b": [true, null]}}"#).unwrap();
        assert_eq!(o[0].0, "z");
        assert_eq!(o[1].0, "a");
        let Node::Object(inner) = &o[1].1 else {
            panic!("nested object")
        };
        assert_eq!(inner[0].0, "y");
        assert_eq!(inner[1].1, Node::Array(vec![Node::Bool(true), Node::Null]));
    }

    #[test]
    fn bad_objects_say_why() {
        assert!(parse_object("[1]")
            .unwrap_err()
            .contains("not a JSON object"));
        let e = parse_object(r#"{"a": "%X%",}"#).unwrap_err();
        assert!(e.contains("not valid JSON") && e.contains("column"), "{e}");
        let e = parse_object(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(e.contains("duplicate key \"a\""), "{e}");
    }

    #[test]
    fn numbers_as_envoy_writes_them() {
        let n = |s: &str| {
            let mut out = Vec::new();
            write_number(&serde_json::from_str(s).unwrap(), &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(n("1"), "1");
        assert_eq!(n("-3"), "-3");
        assert_eq!(n("1.0"), "1");
        assert_eq!(n("1.5"), "1.5");
    }
}

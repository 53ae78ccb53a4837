//! Path normalization as Istio configures Envoy's HTTP connection manager from MeshConfig
//! `pathNormalization`, applied before matching; the normalized path is what the
//! upstream sees.
//!
//! - `NONE`: the path as received.
//! - `BASE` (Istio's default): Envoy's `normalize_path`, Chromium's URL path
//!   canonicalizer as Envoy carries it: RFC 3986 dot segments removed (`.` and `..`, also
//!   spelled `%2e`), `\` taken as `/`, escaped unreserved characters (`%41`, `%7E`)
//!   decoded, characters not allowed in a path escaped (`%20`, high bytes as `%XX`),
//!   other escapes (`%2F`, `%5C`) kept as sent. A NUL (raw or `%00`) fails the request.
//! - `MERGE_SLASHES`: then Envoy's `merge_slashes` (`//` → `/`).
//! - `DECODE_AND_MERGE_SLASHES`: first `%2F`/`%5C` (any case) decoded to `/`/`\`
//!   (Envoy's `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`), then both.
//!
//! Only the path is touched; the query string is kept as sent.

use crate::config::model::PathNormalizationMode;

/// The path cannot be normalized (Envoy answers 400).
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidPath;

/// The normalized form of `path` (no query string), or `None` when it is unchanged.
pub fn normalize(path: &[u8], mode: PathNormalizationMode) -> Result<Option<Vec<u8>>, InvalidPath> {
    let (decode, canonical, merge) = match mode {
        PathNormalizationMode::None => return Ok(None),
        PathNormalizationMode::Default | PathNormalizationMode::Base => (false, true, false),
        PathNormalizationMode::MergeSlashes => (false, true, true),
        PathNormalizationMode::DecodeAndMergeSlashes => (true, true, true),
    };
    // Only origin-form paths: `*` (OPTIONS) and the like are left alone.
    if !path.starts_with(b"/") && !path.starts_with(b"\\") {
        return Ok(None);
    }
    if untouched(path, merge) {
        return Ok(None);
    }
    let mut out = path.to_vec();
    if decode {
        out = unescape_slashes(&out);
    }
    if canonical {
        out = canonicalize(&out)?;
    }
    if merge {
        out = merge_slashes(&out);
    }
    Ok((out != path).then_some(out))
}

/// Whether no step can change `path`: no escape, backslash, dot segment candidate,
/// character to escape, or (when merging) `//`. Most paths are; they cost one scan.
fn untouched(path: &[u8], merge: bool) -> bool {
    let mut prev = 0u8;
    for &b in path {
        let plain = matches!(class(b), Class::Pass | Class::Unescape);
        if !plain || (prev == b'/' && (b == b'.' || (merge && b == b'/'))) {
            return false;
        }
        prev = b;
    }
    true
}

/// Envoy's `PathUtil::unescapeSlashes`: `%2F`/`%2f` → `/`, `%5C`/`%5c` → `\`.
fn unescape_slashes(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' && i + 2 < path.len() {
            match (path[i + 1], path[i + 2].to_ascii_uppercase()) {
                (b'2', b'F') => {
                    out.push(b'/');
                    i += 3;
                    continue;
                }
                (b'5', b'C') => {
                    out.push(b'\\');
                    i += 3;
                    continue;
                }
                _ => {}
            }
        }
        out.push(path[i]);
        i += 1;
    }
    out
}

/// Envoy's `PathTransformer::mergeSlashes`: empty segments dropped, the leading and a
/// trailing slash kept. (Envoy turns a path of only slashes into `//`; this gives `/`.)
fn merge_slashes(path: &[u8]) -> Vec<u8> {
    if !path.windows(2).any(|w| w == b"//") {
        return path.to_vec();
    }
    let mut out = Vec::with_capacity(path.len());
    if path.starts_with(b"/") {
        out.push(b'/');
    }
    let mut first = true;
    for seg in path.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
        if !first {
            out.push(b'/');
        }
        out.extend_from_slice(seg);
        first = false;
    }
    if path.ends_with(b"/") && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out
}

/// How the canonicalizer treats a byte (Chromium's `kPathCharLookup`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Copied as is, and kept escaped when it arrives escaped.
    Pass,
    /// Escaped in the output.
    Escape,
    /// Copied as is, and decoded when it arrives escaped (unreserved characters).
    Unescape,
    /// Not allowed (NUL): escaped, and the path fails.
    Invalid,
}

fn class(b: u8) -> Class {
    match b {
        0 => Class::Invalid,
        0x01..=0x20 | 0x7f..=0xff => Class::Escape,
        b'"' | b'#' | b'%' | b'<' | b'>' | b'?' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' => {
            Class::Escape
        }
        b'-' | b'_' | b'~' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' => Class::Unescape,
        // ! $ & ' ( ) * + , . / : ; = @ [ ]
        _ => Class::Pass,
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A valid `%XX` at `i`: its value.
fn escaped(s: &[u8], i: usize) -> Option<u8> {
    if i + 2 >= s.len() {
        return None;
    }
    Some(hex(s[i + 1])? << 4 | hex(s[i + 2])?)
}

/// The length of a dot at `i`: `.` (1) or `%2e`/`%2E` (3); 0 when there is none.
fn dot_len(s: &[u8], i: usize) -> usize {
    match s.get(i) {
        Some(b'.') => 1,
        Some(b'%') if s.get(i + 1) == Some(&b'2') && matches!(s.get(i + 2), Some(b'e' | b'E')) => 3,
        _ => 0,
    }
}

fn is_slash(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
}

/// Back to the slash before the last segment (never above the root); the output keeps
/// ending with a slash.
fn back_up(out: &mut Vec<u8>) {
    let mut i = out.len() - 1;
    if i == 0 {
        return;
    }
    i -= 1;
    while out[i] != b'/' && i > 0 {
        i -= 1;
    }
    out.truncate(i + 1);
}

/// Chromium's `CanonicalizePath` (`DoPartialPath`) as Envoy's `normalize_path` runs it.
fn canonicalize(s: &[u8]) -> Result<Vec<u8>, InvalidPath> {
    let mut out = Vec::with_capacity(s.len() + 8);
    if s.is_empty() {
        return Ok(b"/".to_vec());
    }
    if !is_slash(s[0]) {
        out.push(b'/');
    }
    let end = s.len();
    // Where the last `%` that did not start a valid escape went in the output.
    let mut last_invalid_percent: Option<usize> = None;
    let mut ok = true;
    let mut i = 0;
    while i < end {
        let b = s[i];
        let dot = dot_len(s, i);
        if dot > 0 {
            if out.last() == Some(&b'/') {
                let after = i + dot;
                // What follows the dot: the end, a slash, or a second dot.
                let (kind, consumed) = if after == end {
                    (1, 0)
                } else if is_slash(s[after]) {
                    (1, 1)
                } else {
                    let second = dot_len(s, after);
                    if second > 0 && after + second == end {
                        (2, second)
                    } else if second > 0 && is_slash(s[after + second]) {
                        (2, second + 1)
                    } else {
                        (0, 0)
                    }
                };
                match kind {
                    0 => out.push(b'.'),
                    1 => {}
                    _ => back_up(&mut out),
                }
                i += dot + consumed;
            } else {
                out.push(b'.');
                i += dot;
            }
            continue;
        }
        match class(b) {
            Class::Pass | Class::Unescape => out.push(b),
            _ if b == b'\\' => out.push(b'/'),
            _ if b == b'%' => match escaped(s, i) {
                Some(v) if class(v) == Class::Unescape => {
                    out.push(v);
                    i += 2;
                    if let Some(p) = last_invalid_percent {
                        if p + 3 >= out.len() {
                            nested_escapes(s, i + 1, p, &mut out);
                        }
                    }
                }
                Some(v) => {
                    out.extend_from_slice(&s[i..i + 3]);
                    i += 2;
                    if class(v) == Class::Invalid {
                        ok = false;
                    }
                }
                None => {
                    last_invalid_percent = Some(out.len());
                    out.push(b'%');
                }
            },
            Class::Invalid => {
                push_escaped(&mut out, b);
                ok = false;
            }
            Class::Escape => push_escaped(&mut out, b),
        }
        i += 1;
    }
    if ok {
        Ok(out)
    } else {
        Err(InvalidPath)
    }
}

/// Chromium's `CheckForNestedEscapes`: an invalid `%` followed by characters just
/// unescaped must not turn into a valid escape (`%%30%30` must not read as `%00` once
/// re-canonicalized); such a `%` becomes `%25`.
fn nested_escapes(s: &[u8], next: usize, percent: usize, out: &mut Vec<u8>) {
    let len = out.len();
    let last = out[len - 1];
    let append_next = percent + 2 == len;
    if append_next {
        if next == s.len() || s[next] >= 0x80 {
            return;
        }
        out.push(s[next]);
    }
    if escaped(out, percent).is_some() {
        if !append_next {
            out.push(out[percent + 1]);
        }
        out[percent + 1] = b'2';
        out[percent + 2] = b'5';
        out.push(last);
    } else if append_next {
        out.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathNormalizationMode::{Base, DecodeAndMergeSlashes, MergeSlashes};

    fn n(path: &str, mode: PathNormalizationMode) -> String {
        match normalize(path.as_bytes(), mode) {
            Ok(Some(p)) => String::from_utf8(p).unwrap(),
            Ok(None) => path.to_string(),
            Err(InvalidPath) => "<invalid>".into(),
        }
    }

    #[test]
    fn none_leaves_the_path_alone() {
        for p in ["/a/../b", "//x", "/a%2Fb", "/%00"] {
            assert_eq!(n(p, PathNormalizationMode::None), p);
        }
    }

    #[test]
    fn base_is_envoys_normalize_path() {
        // Cases of Envoy's path_utility_test (NormalizeValidPaths, NormalizeCasePath, ...).
        let cases = [
            ("/xyz", "/xyz"),
            ("/x/y/z", "/x/y/z"),
            ("/../../../../", "/"),
            ("/..", "/"),
            ("/../..", "/"),
            ("/x/y/../z", "/x/z"),
            ("/x/y/./z", "/x/y/z"),
            ("/x/./y/./../z", "/x/z"),
            ("/x/../../../y", "/y"),
            ("/x/.././y", "/y"),
            ("/x/..", "/"),
            ("/x/y/..", "/x/"),
            ("/x/y/.", "/x/y/"),
            ("/x/./", "/x/"),
            ("/x/.../y", "/x/.../y"),
            ("/x/..y/z", "/x/..y/z"),
            ("/x/y..", "/x/y.."),
            ("/x\\y", "/x/y"),
            ("/x\\..\\y", "/y"),
            ("/x/%2e%2e/y", "/y"),
            ("/x/%2E./y", "/y"),
            ("/x/.%2e", "/"),
            ("/x/%2e/y", "/x/y"),
            ("/a%2eb", "/a.b"),
            ("/%41%62c", "/Abc"),
            ("/%7e%2D%5f", "/~-_"),
            ("/x%2Fy", "/x%2Fy"),
            ("/x%2fy/..%2F", "/x%2fy/..%2F"),
            ("/x%5Cy", "/x%5Cy"),
            ("/x%20y", "/x%20y"),
            ("/x y", "/x%20y"),
            ("/a\"b<c>", "/a%22b%3Cc%3E"),
            ("/a{b}|c^`", "/a%7Bb%7D%7Cc%5E%60"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/%zz/%4", "/%zz/%4"),
            ("/x//y", "/x//y"),
            ("/!$&'()*+,;=:@[]", "/!$&'()*+,;=:@[]"),
            ("/a/b/", "/a/b/"),
            ("/%%30%30", "/%2500"),
            ("/%%300", "/%2500"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input, Base), want, "{input}");
        }
        // A NUL fails, raw or escaped.
        assert_eq!(n("/a%00b", Base), "<invalid>");
        assert_eq!(n("/a\0b", Base), "<invalid>");
        // Raw high bytes are escaped.
        assert_eq!(
            normalize(b"/\xff", Base).unwrap().as_deref(),
            Some(&b"/%FF"[..])
        );
        // Not origin-form: left alone.
        assert_eq!(n("*", Base), "*");
        // The fast path only skips paths the steps leave as they are.
        for p in [
            "/",
            "/a/b.c/d-e_f~g/",
            "/x/y.",
            "/.well-known",
            "/a/..b",
            "/a//b",
            "/%41",
        ] {
            let fast = untouched(p.as_bytes(), true);
            assert!(!fast || n(p, MergeSlashes) == p, "{p}");
        }
        assert!(untouched(b"/a/b.c/d-e_f~g/", true));
        assert!(!untouched(b"/a//b", true) && untouched(b"/a//b", false));
    }

    #[test]
    fn merge_slashes_after_normalizing() {
        let cases = [
            ("//a//b/", "/a/b/"),
            ("/a///b", "/a/b"),
            ("/a/b", "/a/b"),
            ("/a/..//b", "/b"),
            ("/a//../b", "/a/b"),
            ("/a%2F%2Fb", "/a%2F%2Fb"),
            ("///", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input, MergeSlashes), want, "{input}");
        }
    }

    #[test]
    fn decode_and_merge_slashes_decodes_escaped_slashes_first() {
        let cases = [
            ("/a%2Fb", "/a/b"),
            ("/a%2fb", "/a/b"),
            ("/a%5Cb", "/a/b"),
            ("/a%5c..%5cb", "/b"),
            ("/public/..%2Fadmin", "/admin"),
            ("/a%2F%2Fb", "/a/b"),
            ("/a%2", "/a%2"),
            ("/a%25%32%46b", "/a%252Fb"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input, DecodeAndMergeSlashes), want, "{input}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// For any path: no panic; a normalized path is rooted, has no `.`/`..` segment
        /// left (so no prefix can be escaped), no `\\`, and normalizing again changes
        /// nothing.
        #[test]
        fn normalization_is_safe_and_idempotent(
            segs in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("[a-z]{0,3}").unwrap(),
                    proptest::strategy::Just(".".to_string()),
                    proptest::strategy::Just("..".to_string()),
                    proptest::strategy::Just("%2e%2E".to_string()),
                    proptest::strategy::Just("%2F".to_string()),
                    proptest::strategy::Just("\\".to_string()),
                    proptest::strategy::Just("".to_string()),
                    proptest::string::string_regex("%[0-9a-fA-F]{0,2}").unwrap(),
                    proptest::string::string_regex("[\\x01-\\xff]{0,2}").unwrap(),
                ],
                0..8,
            ),
            mode in proptest::prop_oneof![
                proptest::strategy::Just(Base),
                proptest::strategy::Just(MergeSlashes),
                proptest::strategy::Just(DecodeAndMergeSlashes),
            ],
        ) {
            let path = format!("/{}", segs.join("/"));
            if let Ok(once) = normalize(path.as_bytes(), mode) {
                let once = once.unwrap_or_else(|| path.clone().into_bytes());
                proptest::prop_assert!(once.starts_with(b"/"));
                proptest::prop_assert!(!once.contains(&b'\\'));
                for seg in once.split(|b| *b == b'/') {
                    proptest::prop_assert!(seg != b"." && seg != b"..", "{:?}", String::from_utf8_lossy(&once));
                }
                let twice = normalize(&once, mode).unwrap();
                proptest::prop_assert!(twice.is_none(), "{:?} -> {:?}", String::from_utf8_lossy(&once), twice.map(|t| String::from_utf8_lossy(&t).into_owned()));
            }
        }
    }
}

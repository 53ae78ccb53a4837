//! Maps a field path (`spec.http[0].route`) to the line where it is written, so that a
//! diagnostic found on the typed model still points at the user's text. serde_yaml keeps
//! no positions in its values; yaml-rust2's event parser gives one for every node.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};

/// Field paths of one YAML document and the (1-based) line each starts on.
#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// Indexes one document's text. Lines are relative to that text; a text the
    /// event parser cannot read yields an empty index (diagnostics then fall back to
    /// the document's first line).
    pub fn build(text: &str) -> LineIndex {
        let mut parser = Parser::new_from_str(text);
        let mut index = LineIndex::default();
        let mut walker = Walker {
            parser: &mut parser,
            out: &mut index.lines,
            depth: 0,
        };
        let _ = walker.document();
        index
    }

    /// The line of `path`, or of its nearest ancestor that is written down.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// A document's text, indexed on first use: most resources never need a line (only
/// those with a diagnostic do), and the text is a fraction of the index's size.
#[derive(Debug, Default, Clone)]
pub struct LazyLineIndex {
    text: Box<str>,
    index: std::sync::OnceLock<LineIndex>,
}

impl LazyLineIndex {
    pub fn new(text: impl Into<Box<str>>) -> LazyLineIndex {
        LazyLineIndex {
            text: text.into(),
            index: std::sync::OnceLock::new(),
        }
    }

    /// The document's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// As [`LineIndex::line_of`]; the first call indexes the text.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.index
            .get_or_init(|| LineIndex::build(&self.text))
            .line_of(path)
    }
}

struct Walker<'p, 'a> {
    parser: &'p mut Parser<std::str::Chars<'a>>,
    out: &'p mut HashMap<String, usize>,
    depth: usize,
}

/// Nesting beyond this is not indexed (no recursion without bound on hostile input).
const MAX_DEPTH: usize = 64;

impl Walker<'_, '_> {
    fn next(&mut self) -> Option<(Event, usize)> {
        match self.parser.next_token() {
            Ok((ev, mark)) => Some((ev, mark.line())),
            Err(_) => None,
        }
    }

    fn document(&mut self) -> Option<()> {
        loop {
            let (ev, line) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentStart => continue,
                Event::StreamEnd | Event::DocumentEnd => return Some(()),
                ev => return self.node(ev, line, String::new()),
            }
        }
    }

    /// Consumes the node that `ev` starts, recording the lines of its children.
    fn node(&mut self, ev: Event, _line: usize, path: String) -> Option<()> {
        if self.depth >= MAX_DEPTH {
            return None; // stop indexing; ancestors keep their lines
        }
        self.depth += 1;
        let r = match ev {
            Event::MappingStart(..) => self.mapping(path),
            Event::SequenceStart(..) => self.sequence(path),
            _ => Some(()),
        };
        self.depth -= 1;
        r
    }

    fn mapping(&mut self, path: String) -> Option<()> {
        loop {
            let (ev, line) = self.next()?;
            let key = match ev {
                Event::MappingEnd => return Some(()),
                Event::Scalar(s, ..) => s,
                other => {
                    // A complex key: skip it and its value.
                    self.node(other, line, String::new())?;
                    let (v, vl) = self.next()?;
                    self.node(v, vl, String::new())?;
                    continue;
                }
            };
            let child = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            self.out.entry(child.clone()).or_insert(line);
            let (v, vl) = self.next()?;
            self.node(v, vl, child)?;
        }
    }

    fn sequence(&mut self, path: String) -> Option<()> {
        let mut i = 0usize;
        loop {
            let (ev, line) = self.next()?;
            if matches!(ev, Event::SequenceEnd) {
                return Some(());
            }
            let child = format!("{path}[{i}]");
            self.out.entry(child.clone()).or_insert(line);
            self.node(ev, line, child)?;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_fields_and_falls_back_to_ancestors() {
        let text = "kind: VirtualService\nspec:\n  hosts: [a, b]\n  http:\n  - match:\n    - uri:\n        prefix: /x\n    route:\n    - destination:\n        host: a\n";
        let idx = LineIndex::build(text);
        assert_eq!(idx.line_of("kind"), Some(1));
        assert_eq!(idx.line_of("spec.hosts[1]"), Some(3));
        assert_eq!(idx.line_of("spec.http[0].match[0].uri.prefix"), Some(7));
        assert_eq!(
            idx.line_of("spec.http[0].route[0].destination.host"),
            Some(10)
        );
        assert_eq!(idx.line_of("spec.http[0].route[0].weight"), Some(9));
        assert_eq!(idx.line_of("nothing.here"), None);
    }

    #[test]
    fn deep_nesting_stops_indexing_without_recursing_forever() {
        let text = format!("a:\n  b: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let idx = LineIndex::build(&text);
        assert_eq!(idx.line_of("a.b"), Some(2));
    }

    #[test]
    fn the_lazy_index_reads_the_same_lines() {
        let idx = LazyLineIndex::new("a:\n  b: [1,\n    2]\n");
        assert_eq!(idx.line_of("a.b[1]"), Some(3));
        assert_eq!(idx.line_of("a.c"), Some(1));
    }

    #[test]
    fn broken_text_gives_an_empty_index() {
        let idx = LineIndex::build("a: [\n  b: {\n");
        assert_eq!(idx.line_of("z"), None);
    }
}

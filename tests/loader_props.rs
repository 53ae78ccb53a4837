//! Property tests: nothing a user can write makes the loader or the checks panic.
//! Bounded: PROPTEST_CASES (default 256 per property) keeps CI time fixed.

use meshgate::config::{check, loader};
use proptest::prelude::*;
use std::path::Path;

fn load(text: &str) {
    let mut loaded = loader::Loaded::default();
    loader::load_text(Path::new("p.yaml"), text, &mut loaded);
    let checked = check(loaded, &[]);
    // Every diagnostic renders.
    for d in &checked.diagnostics {
        let _ = d.to_string();
    }
}

/// Fragments of real Istio YAML, so random strings reach deep into the model.
const SEED: &str = include_str!("../conf/bookinfo.yaml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
        load(&s);
    }

    #[test]
    fn yaml_shaped_text_never_panics(lines in prop::collection::vec(
        "( {0,6})(-? ?)(apiVersion|kind|metadata|spec|name|hosts|http|route|destination|host|match|uri|prefix|weight|servers|port|number|tls|mode|subsets|labels|\\*|---|\\[|\\]|\\{|\\}|x)(: ?)([a-z0-9./*\\[\\]{}\"'-]{0,12})",
        0..40,
    )) {
        load(&lines.join("\n"));
    }

    #[test]
    fn mutated_istio_config_never_panics(cuts in prop::collection::vec((0usize..4000, 0usize..8, "[ -~\\n]{0,6}"), 1..8)) {
        let mut text = SEED.to_string();
        for (at, del, ins) in cuts {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + del).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end, &ins);
        }
        load(&text);
    }
}

#[test]
fn deeply_nested_input_is_refused_not_a_crash() {
    let deep = format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: a}}\nspec: {}{}", "[".repeat(5000), "]".repeat(5000));
    load(&deep);
    let deep_map = format!("a: {}1{}", "{b: ".repeat(3000), "}".repeat(3000));
    load(&deep_map);
}

//! Completion and hints for the front ends (the REPL's Tab and hints, the TUI's command line),
//! written as pure functions of the line and the workbench's names so they can be tested
//! without a terminal. Both read the verb table: the words typed after the verb are matched
//! against each of its forms, and the kind of the word that comes next decides what is offered
//! (datasets, layers, a path, keywords, the options not given yet, an option's values).

use super::command::{CmpOp, Metric};
use super::verb::{self, Form, VERBS, VerbSpec, Word, args::looks_like_option};
use crate::engine::Engine;

/// What completion can offer besides verbs: the names the workbench currently knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    pub datasets: Vec<String>,
    pub layers: Vec<String>,
}

/// Where the word under the cursor starts and what kind of word it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// Candidates for the word starting at the byte offset.
    Words(usize, Vec<String>),
    /// A file path starting at the byte offset (the caller completes it from the file system).
    Path(usize),
}

fn starting_with(prefix: &str, words: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = words
        .into_iter()
        .filter(|w| w.starts_with(prefix))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Everything a word of `kind` may be, as far as the names known now tell.
fn candidates(kind: Word, names: &Names) -> Vec<String> {
    let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let observers = || {
        crate::observer::ALL_KINDS
            .iter()
            .map(|k| k.name().to_string())
    };
    let engines = || Engine::ALL.iter().map(|e| e.name().to_string());
    match kind {
        Word::Keyword(words) => owned(words),
        Word::Verb => VERBS.iter().map(|v| v.name.to_string()).collect(),
        Word::Dataset => names.datasets.clone(),
        Word::Layer | Word::LayerGroup => names.layers.clone(),
        Word::Target => ["*", "type="]
            .into_iter()
            .map(String::from)
            .chain(names.layers.iter().cloned())
            .collect(),
        Word::Engine => engines().collect(),
        Word::Comparison => CmpOp::ALL.iter().map(|(_, s)| s.to_string()).collect(),
        // `sqnr` is left out: it needs a layer after the dataset.
        Word::Metric => names
            .datasets
            .iter()
            .flat_map(|d| {
                Metric::NAMES
                    .iter()
                    .filter(|m| **m != "sqnr")
                    .map(move |m| format!("{m}({d})"))
            })
            .collect(),
        Word::Observer => observers().collect(),
        Word::Quantizer => observers()
            .chain(["fake_quant(".into(), "fused_fake_quant(".into()])
            .collect(),
        // Backend defaults are named after the engines.
        Word::Preset => engines()
            .chain(
                crate::qconfig::presets::preset_names()
                    .filter(|n| n.contains("qconfig"))
                    .map(String::from),
            )
            .collect(),
        Word::Path | Word::Text => Vec::new(),
    }
}

/// How the words typed after the verb fill one form.
struct Fit<'a> {
    /// Positional words filled.
    filled: usize,
    /// How many of them matched a keyword (`errors weights` is that form, not `errors DATA`).
    keywords: usize,
    /// Options already given.
    given: Vec<&'a str>,
}

/// How `typed` fills `form`, or `None` when it cannot be that form.
fn fit<'a>(form: &Form, typed: &[&'a str]) -> Option<Fit<'a>> {
    let mut fit = Fit {
        filled: 0,
        keywords: 0,
        given: Vec::new(),
    };
    for &w in typed {
        let key = w
            .split_once('=')
            .map(|(k, _)| k)
            .filter(|_| looks_like_option(w));
        match (form.arg(fit.filled), key) {
            (Some(kind), Some(key)) if kind.takes_option(key) => fit.filled += 1,
            (_, Some(key)) => fit.given.push(key),
            (Some(Word::Keyword(words)), None) if !words.contains(&w) => return None,
            (Some(Word::Keyword(_)), None) => {
                fit.filled += 1;
                fit.keywords += 1;
            }
            (Some(_), None) => fit.filled += 1,
            (None, None) => return None,
        }
    }
    Some(fit)
}

/// The kind of option `key`'s value in any form of `spec`.
fn option_kind(spec: &VerbSpec, key: &str) -> Option<Word> {
    spec.forms
        .iter()
        .flat_map(|f| f.options)
        .find(|o| o.key == key)
        .map(|o| o.value)
}

/// Decides what to complete for `line` (the text before the cursor).
pub fn slot(line: &str, names: &Names) -> Slot {
    let start = line.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word = &line[start..];
    let before: Vec<&str> = line[..start].split_whitespace().collect();
    let Some((verb, typed)) = before.split_first() else {
        return Slot::Words(start, starting_with(word, candidates(Word::Verb, names)));
    };
    let Some(spec) = verb::find(&verb.to_ascii_lowercase()) else {
        return Slot::Words(start, Vec::new());
    };
    if let Some((key, value)) = word.split_once('=') {
        let at = start + key.len() + 1;
        return match option_kind(spec, key) {
            Some(Word::Path) => Slot::Path(at),
            Some(kind) => Slot::Words(at, starting_with(value, candidates(kind, names))),
            None => Slot::Words(at, Vec::new()),
        };
    }
    let fits: Vec<(&Form, Fit)> = spec
        .forms
        .iter()
        .filter_map(|f| fit(f, typed).map(|fit| (f, fit)))
        .collect();
    // A keyword typed decides between forms, as it does for the parser.
    let most = fits.iter().map(|(_, f)| f.keywords).max().unwrap_or(0);
    let mut kinds = Vec::new();
    let mut offered = Vec::new();
    for (form, fit) in fits.iter().filter(|(_, f)| f.keywords == most) {
        kinds.extend(form.arg(fit.filled));
        // Options come once the positional words are all there, as the usage writes them.
        if fit.filled >= form.args.len() {
            offered.extend(
                form.options
                    .iter()
                    .filter(|o| !fit.given.contains(&o.key))
                    .map(|o| format!("{}=", o.key)),
            );
        }
    }
    if kinds.contains(&Word::Path) {
        return Slot::Path(start);
    }
    // Inside a fuse group, the module after the last comma.
    if let Some(i) = word.rfind(',')
        && kinds.contains(&Word::LayerGroup)
    {
        let at = start + i + 1;
        return Slot::Words(at, starting_with(&word[i + 1..], names.layers.clone()));
    }
    offered.extend(kinds.into_iter().flat_map(|k| candidates(k, names)));
    Slot::Words(start, starting_with(word, offered))
}

/// The usage that remains after a complete verb (`predict ` → `DATA out=FILE.npy`).
pub fn hint(line: &str) -> Option<String> {
    let verb = line.strip_suffix(' ')?;
    if verb.contains(char::is_whitespace) {
        return None;
    }
    verb::find(verb)
        .map(|spec| {
            let usage = spec.usage;
            usage
                .split(" | ")
                .next()
                .unwrap_or(usage)
                .trim_start_matches(spec.name)
                .trim_start()
                .to_string()
        })
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            datasets: vec!["calib".into(), "test".into()],
            layers: vec!["conv1".into()],
        }
    }

    #[test]
    fn verbs_objects_datasets_and_paths() {
        assert_eq!(
            slot("pred", &names()),
            Slot::Words(0, vec!["predict".into()])
        );
        assert_eq!(
            slot("pr", &names()),
            Slot::Words(0, vec!["predict".into(), "prepare".into()])
        );
        assert_eq!(
            slot("quantize ", &names()),
            Slot::Words(9, vec!["calib".into(), "dynamic".into(), "test".into()])
        );
        assert_eq!(
            slot("qconfig conv1 preset=qn", &names()),
            Slot::Words(21, vec!["qnnpack".into()])
        );
        assert_eq!(
            slot("load ", &names()),
            Slot::Words(5, vec!["data".into(), "model".into()])
        );
        assert_eq!(
            slot("eval t", &names()),
            Slot::Words(5, vec!["test".into()])
        );
        assert_eq!(slot("load model sample", &names()), Slot::Path(11));
        assert_eq!(
            slot("load data x a.npy labels=sam", &names()),
            Slot::Path(25)
        );
        assert_eq!(
            slot("predict test o", &names()),
            Slot::Words(13, vec!["out=".into()])
        );
        assert_eq!(
            slot("predict test out=o.npy m", &names()),
            Slot::Words(23, vec!["model=".into()])
        );
        assert_eq!(
            slot("predict test out=o.npy model=q", &names()),
            Slot::Words(29, vec!["quantized".into()])
        );
        assert_eq!(
            slot("expect acc", &names()),
            Slot::Words(7, vec!["accuracy(calib)".into(), "accuracy(test)".into()])
        );
    }

    /// What the grammar gives beyond the hand-written rules it replaced: the form a typed
    /// keyword picks, options not yet given, `type=` as a target, fuse groups.
    #[test]
    fn the_grammar_decides_between_forms_and_options() {
        let words = |line: &str| match slot(line, &names()) {
            Slot::Words(_, w) => w,
            Slot::Path(at) => vec![format!("path at {at}")],
        };
        assert_eq!(words("errors weights "), ["weight="]);
        assert_eq!(words("errors test "), ["mode="]);
        assert_eq!(
            words("errors weights weight=per_channel_m"),
            ["per_channel_minmax"]
        );
        assert_eq!(words("predict test out=o.npy "), ["model="]);
        assert_eq!(
            words("qconfig type=Linear "),
            ["activation=", "none", "preset=", "weight="]
        );
        assert_eq!(
            words("qconfig conv1 "),
            ["activation=", "none", "preset=", "weight="]
        );
        assert_eq!(words("qconfig conv1 none "), Vec::<String>::new());
        assert_eq!(words("prepare "), ["qat"]);
        assert_eq!(words("fuse "), ["auto", "conv1"]);
        assert_eq!(words("fuse auto "), ["add_relu="]);
        assert_eq!(words("fuse auto add_relu="), ["off", "on"]);
        assert_eq!(
            slot("fuse conv1,c", &names()),
            Slot::Words(11, vec!["conv1".into()])
        );
        assert_eq!(words("sensitivity test calib="), ["calib", "test"]);
        assert_eq!(
            words("compare engines fbgemm "),
            ["fbgemm", "qnnpack", "x86"]
        );
        assert_eq!(words("compare reference "), ["path at 18"]);
        assert_eq!(words("compare reference r.npz "), ["calib", "test"]);
        assert_eq!(
            words("expect accuracy(test) "),
            ["<", "<=", "==", ">", ">="]
        );
        assert_eq!(words("help qc"), ["qconfig"]);
        assert_eq!(words("eval test extra "), Vec::<String>::new());
        assert_eq!(words("frobnicate "), Vec::<String>::new());
    }

    /// `export` offers its five report kinds, and each kind's own words and options.
    #[test]
    fn export_completes_every_report_kind() {
        let words = |line: &str| match slot(line, &names()) {
            Slot::Words(_, w) => w,
            Slot::Path(at) => vec![format!("path at {at}")],
        };
        assert_eq!(
            words("export "),
            [
                "compare",
                "errors",
                "model",
                "pytorch",
                "qparams",
                "sensitivity",
                "weights"
            ]
        );
        assert_eq!(words("export qparams "), ["data=", "out="]);
        assert_eq!(words("export pytorch "), ["out="]);
        assert_eq!(words("export weights "), ["out=", "weight="]);
        assert_eq!(words("export compare "), ["fbgemm", "qnnpack", "x86"]);
        assert_eq!(words("export compare fbgemm qnnpack "), ["calib", "test"]);
        assert_eq!(
            words("export sensitivity test "),
            ["batch=", "batches=", "calib=", "out="]
        );
        assert_eq!(words("export errors test out=r.json "), ["mode="]);
        assert_eq!(words("export weights out="), ["path at 19"]);
    }

    #[test]
    fn hints_show_the_rest_of_the_usage() {
        assert_eq!(hint("predict ").as_deref(), Some("DATA out=FILE.npy"));
        assert_eq!(hint("eval ").as_deref(), Some("DATA"));
        assert_eq!(hint("eval test"), None);
        assert_eq!(hint("nosuch "), None);
    }
}

//! Completion and hints for the front ends (the REPL's Tab and hints, the TUI's command line),
//! written as pure functions of the line and the workbench's names so they can be tested
//! without a terminal.

use super::VERBS;

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

/// Decides what to complete for `line` (the text before the cursor).
pub fn slot(line: &str, names: &Names) -> Slot {
    let start = line.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word = &line[start..];
    let before: Vec<&str> = line[..start].split_whitespace().collect();
    if let Some((key, value)) = word.split_once('=') {
        return match key {
            "labels" | "out" | "qparams" => Slot::Path(start + key.len() + 1),
            "mode" => Slot::Words(
                start + key.len() + 1,
                starting_with(value, ["cumulative", "isolated"].map(String::from).to_vec()),
            ),
            "preset" => Slot::Words(
                start + key.len() + 1,
                starting_with(
                    value,
                    ["fbgemm", "qnnpack", "x86"]
                        .into_iter()
                        .chain(
                            crate::qconfig::presets::preset_names()
                                .filter(|n| n.contains("qconfig")),
                        )
                        .map(String::from),
                ),
            ),
            "model" => Slot::Words(
                start + key.len() + 1,
                starting_with(value, ["float", "quantized"].map(String::from).to_vec()),
            ),
            "profile" => Slot::Words(
                start + key.len() + 1,
                starting_with(value, ["vnni", "avx2", "exact"].map(String::from).to_vec()),
            ),
            "activation" | "weight" => Slot::Words(
                start + key.len() + 1,
                starting_with(
                    value,
                    crate::observer::ALL_KINDS
                        .iter()
                        .map(|k| k.name().to_string())
                        .chain(["fake_quant(".into(), "fused_fake_quant(".into()]),
                ),
            ),
            "dtype" => Slot::Words(
                start + key.len() + 1,
                starting_with(value, ["qint8", "float16"].map(String::from).to_vec()),
            ),
            _ => Slot::Words(start + key.len() + 1, starting_with(value, Vec::new())),
        };
    }
    let words = |list: Vec<String>| Slot::Words(start, starting_with(word, list));
    let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match before.as_slice() {
        [] => words(VERBS.iter().map(|(v, _, _)| v.to_string()).collect()),
        ["load"] => words(owned(&["model", "data"])),
        ["save"] => words(owned(&["model", "session"])),
        ["show"] => words(owned(&["model", "qparams"])),
        ["errors"] => words(
            std::iter::once("weights".to_string())
                .chain(names.datasets.iter().cloned())
                .collect(),
        ),
        ["errors", "weights"] => words(owned(&["weight="])),
        ["errors", _] => words(owned(&["mode="])),
        ["export", "errors", _] => words(owned(&["out=", "mode="])),
        ["export"] => words(owned(&["errors"])),
        ["export", "errors"] => words(names.datasets.clone()),
        ["compare"] => words(owned(&["engines", "reference"])),
        ["compare", "reference"] => Slot::Path(start),
        ["compare", "reference", _] => words(names.datasets.clone()),
        ["compare", "reference", _, _] => words(owned(&["qparams=", "sample="])),
        ["compare", "engines"] | ["compare", "engines", _] => {
            words(owned(&["fbgemm", "qnnpack", "x86"]))
        }
        ["compare", "engines", _, _] => words(names.datasets.clone()),
        ["help"] => words(VERBS.iter().map(|(v, _, _)| v.to_string()).collect()),
        ["load", "model"] | ["save", "model" | "session"] | ["load", "data", _] => {
            Slot::Path(start)
        }
        ["load", "data", _, _] => words(owned(&["labels="])),
        ["eval"] | ["predict"] | ["calibrate"] => words(names.datasets.clone()),
        ["quantize"] => words(
            std::iter::once("dynamic".to_string())
                .chain(names.datasets.iter().cloned())
                .collect(),
        ),
        ["quantize", "dynamic"] => words(owned(&["dtype="])),
        ["calibrate" | "quantize", _] => words(owned(&["batch=", "batches="])),
        ["engine"] => words(owned(&["fbgemm", "qnnpack", "x86"])),
        ["engine", _] => words(owned(&["profile="])),
        ["fuse"] => words(
            std::iter::once("auto".to_string())
                .chain(names.layers.iter().cloned())
                .collect(),
        ),
        ["qconfig"] => words(
            ["*", "type="]
                .into_iter()
                .map(String::from)
                .chain(names.layers.iter().cloned())
                .collect(),
        ),
        ["qconfig", _] => words(owned(&["preset=", "activation=", "weight=", "none"])),
        ["predict", _] | ["predict", _, _] => words(owned(&["out=", "model="])),
        ["expect"] => words(
            names
                .datasets
                .iter()
                .flat_map(|d| {
                    [
                        "accuracy",
                        "correct",
                        "quantized_accuracy",
                        "quantized_correct",
                        "agreement",
                        "saturated",
                    ]
                    .map(|m| format!("{m}({d})"))
                })
                .collect(),
        ),
        ["expect", _] => words(owned(&[">=", ">", "<=", "<", "=="])),
        _ => Slot::Words(start, Vec::new()),
    }
}

/// The usage that remains after a complete verb (`predict ` → `DATA out=FILE.npy`).
pub fn hint(line: &str) -> Option<String> {
    let verb = line.strip_suffix(' ')?;
    if verb.contains(char::is_whitespace) {
        return None;
    }
    VERBS
        .iter()
        .find(|(v, _, _)| *v == verb)
        .map(|(v, usage, _)| {
            usage
                .split(" | ")
                .next()
                .unwrap_or(usage)
                .trim_start_matches(v)
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

    #[test]
    fn hints_show_the_rest_of_the_usage() {
        assert_eq!(hint("predict ").as_deref(), Some("DATA out=FILE.npy"));
        assert_eq!(hint("eval ").as_deref(), Some("DATA"));
        assert_eq!(hint("eval test"), None);
        assert_eq!(hint("nosuch "), None);
    }
}

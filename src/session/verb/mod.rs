//! The verb table: one `VerbSpec` per verb of the session language, holding all that the rest
//! of `session` knows about it — its usage line, summary and help details, its grammar (each
//! form's positional words and `key=value` options, with what every word may be), and the
//! functions that parse its arguments into a `Command` and print a `Command` back. The
//! tokenizer and `parse_line`, `Display for Command`, `help` and completion are interpreters of
//! this table, so a new verb is one entry (in the file of its role) plus its workbench handler.

pub(super) mod args;
mod diagnose;
mod files;
mod inspect;
mod measure;
mod qconfig;
mod search;
mod steps;

use super::{Command, SessionError};
use args::{Args, Line};

/// One verb of the session language.
pub struct VerbSpec {
    pub name: &'static str,
    /// Every form, `|`-separated: `help` lists it, parse errors quote it, and its first form
    /// is the hint after the verb.
    pub usage: &'static str,
    /// One line for `help`'s table.
    pub summary: &'static str,
    /// What `help VERB` adds below the usage.
    pub details: Details,
    /// The grammar completion follows.
    pub forms: &'static [Form],
    /// Reads the words after the verb; options it leaves untaken are refused afterwards.
    pub(super) parse: fn(&mut Args) -> Result<Command, SessionError>,
    /// Writes the words after the verb for the commands of this verb, and returns false
    /// (writing nothing) for any other command.
    pub(super) print: fn(&Command, &mut Line) -> bool,
}

impl VerbSpec {
    /// The words keyword option `key` takes (empty when the verb has no such option).
    pub fn keywords(&self, key: &str) -> &'static [&'static str] {
        let forms: &'static [Form] = self.forms;
        forms
            .iter()
            .flat_map(|f| f.options)
            .find_map(|o| match o.value {
                Word::Keyword(words) if o.key == key => Some(words),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

/// The longer text of `help VERB`.
pub enum Details {
    None,
    Text(&'static str),
    /// Built when asked, from lists the code keeps (the observers `qconfig` knows).
    Built(fn() -> String),
}

impl Details {
    pub fn text(&self) -> Option<String> {
        match self {
            Details::None => None,
            Details::Text(t) => Some(t.to_string()),
            Details::Built(f) => Some(f()),
        }
    }
}

/// One form of a verb: its positional words in order and the options it takes.
pub struct Form {
    pub args: &'static [Word],
    /// Whether the last positional word may repeat (`fuse`'s module groups).
    pub repeats: bool,
    pub options: &'static [Opt],
}

impl Form {
    pub(super) const fn new(args: &'static [Word], options: &'static [Opt]) -> Form {
        Form {
            args,
            repeats: false,
            options,
        }
    }

    /// The kind of the positional word at `i`, if the form has one there.
    pub fn arg(&self, i: usize) -> Option<Word> {
        match self.args.get(i) {
            Some(w) => Some(*w),
            None if self.repeats => self.args.last().copied(),
            None => None,
        }
    }
}

/// A `key=value` option and what its value may be.
pub struct Opt {
    pub key: &'static str,
    pub value: Word,
}

pub(super) const fn opt(key: &'static str, value: Word) -> Opt {
    Opt { key, value }
}

/// What a word (a positional argument or an option's value) may be; completion offers
/// candidates by kind, and a keyword option's parser accepts exactly its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// One of these words: an object (`model`), a switch's values (`off`, `on`: the first is
    /// what a switch reads as false).
    Keyword(&'static [&'static str]),
    Verb,
    Dataset,
    /// A module path or glob.
    Layer,
    /// Comma-separated module paths (one group of `fuse`).
    LayerGroup,
    /// `qconfig`'s target: `*`, a module path or glob, or the option `type=CLASS`.
    Target,
    Engine,
    /// A comparison of `expect`.
    Comparison,
    /// `METRIC(DATA)`.
    Metric,
    Path,
    /// An observer spec.
    Observer,
    /// A quantizer spec: an observer, or a fake-quant around one.
    Quantizer,
    /// A backend default or a QConfig preset.
    Preset,
    /// A number or a new name: nothing to offer.
    Text,
}

impl Word {
    /// Whether the option `key=...` fills a positional word of this kind (`qconfig type=X`).
    pub fn takes_option(self, key: &str) -> bool {
        self == Word::Target && key == "type"
    }
}

/// `mode=` of the error commands.
pub(super) const MODE: Opt = opt("mode", Word::Keyword(&["cumulative", "isolated"]));

/// The verbs in the order `help` lists them.
pub const VERBS: &[VerbSpec] = &[
    files::LOAD,
    inspect::SHOW,
    inspect::EVAL,
    inspect::PREDICT,
    inspect::EXPECT,
    measure::ERRORS,
    files::SAVE,
    steps::ENGINE,
    qconfig::QCONFIG,
    steps::FUSE,
    steps::EQUALIZE,
    steps::PREPARE,
    steps::TRAIN,
    steps::CALIBRATE,
    steps::CHECK,
    steps::CONVERT,
    steps::CORRECT,
    steps::QUANTIZE,
    measure::EXPORT,
    measure::PLOT,
    measure::SENSITIVITY,
    search::SEARCH,
    diagnose::DIAGNOSE,
    measure::COMPARE,
    inspect::HELP,
];

/// The verb called `name`.
pub fn find(name: &str) -> Option<&'static VerbSpec> {
    VERBS.iter().find(|v| v.name == name)
}

/// The verbs' names, as errors list them.
pub fn names() -> Vec<&'static str> {
    VERBS.iter().map(|v| v.name).collect()
}

/// The command's canonical text: its verb's printer writes it.
pub(super) fn print(cmd: &Command) -> String {
    for spec in VERBS {
        let mut line = Line::new(spec);
        if (spec.print)(cmd, &mut line) {
            return line.into_string();
        }
    }
    // Every variant belongs to a verb (`every_command_has_a_printer` checks the table).
    unreachable!("no verb prints {cmd:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grammar and the usage text describe the same options, so completion offers what
    /// `help` documents.
    #[test]
    fn options_in_the_grammar_are_the_ones_in_the_usage() {
        for spec in VERBS {
            let mut keys: Vec<&str> = spec
                .forms
                .iter()
                .flat_map(|f| f.options.iter().map(|o| o.key))
                .collect();
            if spec.forms.iter().any(|f| f.args.contains(&Word::Target)) {
                keys.push("type");
            }
            for key in &keys {
                assert!(
                    spec.usage.contains(&format!("{key}=")),
                    "{}: {key}= is not in the usage",
                    spec.name
                );
            }
            for word in spec.usage.split([' ', '[', '|']) {
                if let Some((key, _)) = word.split_once('=')
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    assert!(
                        keys.contains(&key),
                        "{}: {key}= is not in the grammar",
                        spec.name
                    );
                }
            }
        }
    }

    #[test]
    fn verb_names_are_unique_and_lowercase() {
        for (i, spec) in VERBS.iter().enumerate() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(VERBS[..i].iter().all(|v| v.name != spec.name));
            assert!(!spec.forms.is_empty(), "{}", spec.name);
        }
    }
}

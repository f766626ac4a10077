//! Parsing one line of the session language into a `Command`, and printing it back in canonical
//! form (`Display`), which is what session files record.
//!
//! Grammar: `VERB [OBJECT] ARG... [key=value]...`; `#` starts a comment; tokens with spaces are
//! written in double quotes.

use super::SessionError;
use crate::observer::ObserverSpec;
// `errors weights` defaults to fbgemm's weight observer (per-channel symmetric qint8 min/max).
use crate::qconfig::presets::default_per_channel_weight_observer;
use std::fmt;

/// A comparison in an `expect` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl CmpOp {
    const ALL: [(CmpOp, &'static str); 5] = [
        (CmpOp::Ge, ">="),
        (CmpOp::Gt, ">"),
        (CmpOp::Le, "<="),
        (CmpOp::Lt, "<"),
        (CmpOp::Eq, "=="),
    ];

    fn parse(s: &str) -> Option<CmpOp> {
        CmpOp::ALL.iter().find(|(_, t)| *t == s).map(|(op, _)| *op)
    }

    fn symbol(self) -> &'static str {
        CmpOp::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("==", |(_, t)| t)
    }

    /// Whether `actual OP expected` holds.
    pub fn holds(self, actual: f64, expected: f64) -> bool {
        match self {
            CmpOp::Ge => actual >= expected,
            CmpOp::Gt => actual > expected,
            CmpOp::Le => actual <= expected,
            CmpOp::Lt => actual < expected,
            CmpOp::Eq => actual == expected,
        }
    }
}

/// A quantity an `expect` line can test.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Top-1 accuracy of the float model on a labelled dataset.
    Accuracy { data: String },
    /// Number of correctly classified samples.
    Correct { data: String },
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Accuracy { data } => write!(f, "accuracy({data})"),
            Metric::Correct { data } => write!(f, "correct({data})"),
        }
    }
}

/// `expect METRIC OP NUMBER`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub metric: Metric,
    pub op: CmpOp,
    pub value: f64,
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op.symbol(), self.value)
    }
}

/// One command of the session language.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `load model PATH` — an ONNX file or a `NAME.qlab` directory.
    LoadModel { path: String },
    /// `load data NAME PATH [labels=PATH]`.
    LoadData {
        name: String,
        path: String,
        labels: Option<String>,
    },
    /// `show model` — the layer listing.
    ShowModel,
    /// `eval DATA` — top-1 accuracy of the float model.
    Eval { data: String },
    /// `predict DATA out=FILE.npy` — write the model outputs.
    Predict { data: String, out: String },
    /// `expect METRIC OP NUMBER` — fail the replay unless it holds.
    Expect(Expectation),
    /// `save model PATH.qlab`.
    SaveModel { path: String },
    /// `save session FILE.qls` — write the recorded commands.
    SaveSession { path: String },
    /// `errors weights [weight=SPEC]` — per-layer weight quantization error, worst first.
    ErrorsWeights { weight: ObserverSpec },
    /// `help [VERB]`.
    Help { verb: Option<String> },
}

/// The verbs and their one-line help, in the order `help` lists them.
pub const VERBS: &[(&str, &str, &str)] = &[
    (
        "load",
        "load model PATH | load data NAME PATH [labels=PATH]",
        "load an ONNX or .qlab model, or a .npy dataset",
    ),
    (
        "show",
        "show model",
        "list the model's layers: path, op, attributes, shapes, parameters",
    ),
    (
        "eval",
        "eval DATA",
        "top-1 accuracy of the float model on a labelled dataset",
    ),
    (
        "predict",
        "predict DATA out=FILE.npy",
        "run the model on a dataset and write its outputs",
    ),
    (
        "expect",
        "expect accuracy(DATA) >= 0.98 | expect correct(DATA) == 395",
        "fail the replay unless the comparison holds",
    ),
    (
        "errors",
        "errors weights [weight=SPEC]",
        "per-layer weight quantization error (SQNR, MSE, ...), worst first",
    ),
    (
        "save",
        "save model PATH.qlab | save session FILE.qls",
        "save the model natively, or the session as a script",
    ),
    ("help", "help [VERB]", "this list, or one verb's usage"),
];

fn quote(s: &str) -> String {
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains('#') {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::LoadModel { path } => write!(f, "load model {}", quote(path)),
            Command::LoadData { name, path, labels } => {
                write!(f, "load data {} {}", quote(name), quote(path))?;
                labels
                    .as_ref()
                    .map_or(Ok(()), |l| write!(f, " labels={}", quote(l)))
            }
            Command::ShowModel => write!(f, "show model"),
            Command::Eval { data } => write!(f, "eval {}", quote(data)),
            Command::Predict { data, out } => {
                write!(f, "predict {} out={}", quote(data), quote(out))
            }
            Command::Expect(e) => write!(f, "expect {e}"),
            Command::SaveModel { path } => write!(f, "save model {}", quote(path)),
            Command::SaveSession { path } => write!(f, "save session {}", quote(path)),
            Command::ErrorsWeights { weight }
                if *weight == default_per_channel_weight_observer() =>
            {
                write!(f, "errors weights")
            }
            Command::ErrorsWeights { weight } => {
                write!(f, "errors weights weight={}", quote(&weight.to_string()))
            }
            Command::Help { verb: None } => write!(f, "help"),
            Command::Help { verb: Some(v) } => write!(f, "help {v}"),
        }
    }
}

/// Splits a line into tokens, honouring double quotes and stopping at an unquoted `#`.
fn tokenize(line: &str) -> Result<Vec<String>, SessionError> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has_token = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                in_quotes = !in_quotes;
                has_token = true;
            }
            '#' if !in_quotes => break,
            c if c.is_whitespace() && !in_quotes => {
                if has_token {
                    tokens.push(std::mem::take(&mut cur));
                    has_token = false;
                }
            }
            c => {
                cur.push(c);
                has_token = true;
            }
        }
    }
    if in_quotes {
        return Err(SessionError::parse("unterminated double quote"));
    }
    if has_token {
        tokens.push(cur);
    }
    Ok(tokens)
}

/// Positional arguments and `key=value` options of one command.
struct Args {
    verb: String,
    positional: Vec<String>,
    options: Vec<(String, String)>,
}

impl Args {
    fn usage(&self) -> &'static str {
        VERBS
            .iter()
            .find(|(v, _, _)| *v == self.verb)
            .map_or("", |(_, u, _)| u)
    }

    fn error(&self, what: impl fmt::Display) -> SessionError {
        SessionError::parse(format!("{what} (usage: {})", self.usage()))
    }

    fn exactly<const N: usize>(&self) -> Result<[String; N], SessionError> {
        <[String; N]>::try_from(self.positional.clone()).map_err(|got| {
            self.error(format!(
                "'{}' takes {N} argument(s), got {}",
                self.verb,
                got.len()
            ))
        })
    }

    /// Takes option `key`; unknown options are rejected by [`Args::done`].
    fn option(&mut self, key: &str) -> Option<String> {
        let i = self.options.iter().position(|(k, _)| k == key)?;
        Some(self.options.remove(i).1)
    }

    fn done(&self) -> Result<(), SessionError> {
        match self.options.first() {
            Some((k, _)) => Err(self.error(format!("unknown option '{k}'"))),
            None => Ok(()),
        }
    }
}

fn parse_expect(args: &Args) -> Result<Expectation, SessionError> {
    let [metric, op, value] = args.exactly::<3>()?;
    let (name, inner) = metric
        .as_str()
        .strip_suffix(')')
        .and_then(|m| m.split_once('('))
        .ok_or_else(|| args.error(format!("'{metric}' is not METRIC(DATA)")))?;
    let data = inner.trim().to_string();
    let metric = match name {
        "accuracy" => Metric::Accuracy { data },
        "correct" => Metric::Correct { data },
        other => return Err(args.error(format!("unknown metric '{other}' (accuracy, correct)"))),
    };
    let op = CmpOp::parse(&op)
        .ok_or_else(|| args.error(format!("'{op}' is not one of >= > <= < ==")))?;
    let value = value
        .parse()
        .map_err(|_| args.error(format!("'{value}' is not a number")))?;
    Ok(Expectation { metric, op, value })
}

/// Parses one line; `Ok(None)` for a blank or comment line.
pub fn parse_line(line: &str) -> Result<Option<Command>, SessionError> {
    let tokens = tokenize(line)?;
    let Some((verb, rest)) = tokens.split_first() else {
        return Ok(None);
    };
    let is_option = |t: &&String| {
        t.split_once('=').is_some_and(|(k, _)| {
            k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let (options, positional): (Vec<&String>, Vec<&String>) = rest.iter().partition(is_option);
    let mut args = Args {
        verb: verb.to_ascii_lowercase(),
        positional: positional.into_iter().cloned().collect(),
        options: options
            .into_iter()
            .filter_map(|t| {
                t.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
    };
    let object = args.positional.first().cloned().unwrap_or_default();
    let cmd = match (args.verb.as_str(), object.as_str()) {
        ("load", "model") => {
            let [_, path] = args.exactly::<2>()?;
            Command::LoadModel { path }
        }
        ("load", "data") => {
            let labels = args.option("labels");
            let [_, name, path] = args.exactly::<3>()?;
            Command::LoadData { name, path, labels }
        }
        ("show", "model") => {
            args.exactly::<1>()?;
            Command::ShowModel
        }
        ("eval", _) => {
            let [data] = args.exactly::<1>()?;
            Command::Eval { data }
        }
        ("predict", _) => {
            let out = args
                .option("out")
                .ok_or_else(|| args.error("predict needs out=FILE.npy"))?;
            let [data] = args.exactly::<1>()?;
            Command::Predict { data, out }
        }
        ("expect", _) => Command::Expect(parse_expect(&args)?),
        ("save", "model") => {
            let [_, path] = args.exactly::<2>()?;
            Command::SaveModel { path }
        }
        ("save", "session") => {
            let [_, path] = args.exactly::<2>()?;
            Command::SaveSession { path }
        }
        ("errors", "weights") => {
            let weight = match args.option("weight") {
                Some(text) => text.parse::<ObserverSpec>().map_err(|e| args.error(e))?,
                None => default_per_channel_weight_observer(),
            };
            args.exactly::<1>()?;
            Command::ErrorsWeights { weight }
        }
        ("help", _) => Command::Help {
            verb: args.positional.first().cloned(),
        },
        (v @ ("load" | "show" | "save" | "errors"), o) => {
            return Err(args.error(format!("'{v} {o}': unknown object")));
        }
        (v, _) => {
            let verbs: Vec<&str> = VERBS.iter().map(|(v, _, _)| *v).collect();
            return Err(SessionError::parse(format!(
                "unknown verb '{v}' (verbs: {})",
                verbs.join(", ")
            )));
        }
    };
    args.done()?;
    Ok(Some(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_round_trips() {
        for line in [
            "load model sample-models/digits_cnn.onnx",
            "load data test x.npy labels=y.npy",
            "load data \"my set\" \"a b.npy\"",
            "show model",
            "eval test",
            "predict test out=out.npy",
            "expect accuracy(test) >= 0.98",
            "expect correct(test) == 395",
            "save model m.qlab",
            "save session s.qls",
            "help",
            "help eval",
            "errors weights",
            "errors weights weight=\"minmax(dtype=qint8, qscheme=per_tensor_symmetric)\"",
        ] {
            let cmd = parse_line(line).unwrap().unwrap();
            assert_eq!(cmd.to_string(), line);
            assert_eq!(parse_line(&cmd.to_string()).unwrap().unwrap(), cmd);
        }
    }

    #[test]
    fn comments_blank_lines_and_errors() {
        assert_eq!(parse_line("   # just a comment").unwrap(), None);
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(
            parse_line("eval test # trailing").unwrap(),
            Some(Command::Eval {
                data: "test".into()
            })
        );
        let e = parse_line("frobnicate").unwrap_err().to_string();
        assert!(
            e.contains("unknown verb 'frobnicate'") && e.contains("eval"),
            "{e}"
        );
        let e = parse_line("eval").unwrap_err().to_string();
        assert!(e.contains("usage: eval DATA"), "{e}");
        let e = parse_line("predict test").unwrap_err().to_string();
        assert!(e.contains("out=FILE.npy"), "{e}");
        let e = parse_line("eval test colour=red").unwrap_err().to_string();
        assert!(e.contains("unknown option 'colour'"), "{e}");
        let e = parse_line("expect accuracy(test) ~ 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'~'"), "{e}");
        let e = parse_line("load model \"unterminated")
            .unwrap_err()
            .to_string();
        assert!(e.contains("quote"), "{e}");
    }
}

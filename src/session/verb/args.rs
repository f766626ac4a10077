//! The words of one line, both ways: the tokenizer (double quotes, `#` comments) and `Args`,
//! a verb's positional words and `key=value` options as its parser takes them; and `Line`,
//! which writes a command back with the quoting the tokenizer needs. The option readers and
//! writers several verbs share (`mode=`, `batch=` / `batches=`, switches) are here, once.

use super::VerbSpec;
use crate::analysis::ErrorMode;
use crate::session::SessionError;
use crate::session::command::{Batching, DEFAULT_CALIBRATION_BATCH};
use std::fmt;

/// Whether an unquoted token reads as a `key=value` option.
pub(in crate::session) fn looks_like_option(t: &str) -> bool {
    t.split_once('=').is_some_and(|(k, _)| {
        k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// `s` as one token: quoted when it would otherwise split, end at a comment, or read as an
/// option.
fn quote(s: &str) -> String {
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains('#') || looks_like_option(s) {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

/// Splits a line into tokens, honouring double quotes and stopping at an unquoted `#`. Each
/// token says whether it began with a quote: `"a=b.npy"` is a positional value, never an option.
pub(in crate::session) fn tokenize(line: &str) -> Result<Vec<(String, bool)>, SessionError> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has_token = false;
    let mut starts_quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                if !has_token {
                    starts_quoted = true;
                }
                in_quotes = !in_quotes;
                has_token = true;
            }
            '#' if !in_quotes => break,
            c if c.is_whitespace() && !in_quotes => {
                if has_token {
                    tokens.push((std::mem::take(&mut cur), starts_quoted));
                    has_token = false;
                    starts_quoted = false;
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
        tokens.push((cur, starts_quoted));
    }
    Ok(tokens)
}

/// Positional arguments and `key=value` options of one command.
pub(in crate::session) struct Args {
    pub spec: &'static VerbSpec,
    pub positional: Vec<String>,
    options: Vec<(String, String)>,
}

impl Args {
    /// The tokens after the verb, split into positional words and options.
    pub fn new(spec: &'static VerbSpec, tokens: &[(String, bool)]) -> Args {
        let is_option = |(t, quoted): &&(String, bool)| !*quoted && looks_like_option(t);
        let (options, positional): (Vec<_>, Vec<_>) = tokens.iter().partition(is_option);
        Args {
            spec,
            positional: positional.into_iter().map(|(t, _)| t.clone()).collect(),
            options: options
                .into_iter()
                .filter_map(|(t, _)| {
                    t.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect(),
        }
    }

    pub fn error(&self, what: impl fmt::Display) -> SessionError {
        SessionError::parse(format!("{what} (usage: {})", self.spec.usage))
    }

    /// The first positional word (`model` in `load model x.onnx`), empty when there is none.
    pub fn object(&self) -> String {
        self.positional.first().cloned().unwrap_or_default()
    }

    pub fn unknown_object(&self) -> SessionError {
        self.error(format!(
            "'{} {}': unknown object",
            self.spec.name,
            self.object()
        ))
    }

    pub fn exactly<const N: usize>(&self) -> Result<[String; N], SessionError> {
        <[String; N]>::try_from(self.positional.clone()).map_err(|got| {
            self.error(format!(
                "'{}' takes {N} argument(s), got {}",
                self.spec.name,
                got.len()
            ))
        })
    }

    /// Takes option `key`; unknown options are rejected by [`Args::done`].
    pub fn option(&mut self, key: &str) -> Option<String> {
        let i = self.options.iter().position(|(k, _)| k == key)?;
        Some(self.options.remove(i).1)
    }

    pub fn done(&self) -> Result<(), SessionError> {
        match self.options.first() {
            Some((k, _)) => Err(self.error(format!("unknown option '{k}'"))),
            None => Ok(()),
        }
    }

    /// Takes keyword option `key`: one of the words the verb's grammar lists for it.
    pub fn keyword(&mut self, key: &str) -> Result<Option<&'static str>, SessionError> {
        let words = self.spec.keywords(key);
        let Some(value) = self.option(key) else {
            return Ok(None);
        };
        match words.iter().find(|w| **w == value) {
            Some(w) => Ok(Some(w)),
            None => Err(self.error(format!("{key} '{value}' ({})", words.join(" or ")))),
        }
    }

    /// Takes switch `key`, whose grammar lists its false word, then its true word.
    pub fn switch(&mut self, key: &str, default: bool) -> Result<bool, SessionError> {
        let on = self.spec.keywords(key).get(1).copied();
        Ok(self.keyword(key)?.map_or(default, |w| Some(w) == on))
    }

    /// `mode=cumulative|isolated`, cumulative by default.
    pub fn mode(&mut self) -> Result<ErrorMode, SessionError> {
        Ok(self
            .keyword("mode")?
            .and_then(ErrorMode::parse)
            .unwrap_or(ErrorMode::Cumulative))
    }

    pub fn count(&self, key: &str, text: &str) -> Result<usize, SessionError> {
        text.parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| self.error(format!("{key}={text} is not a positive integer")))
    }

    /// `batch=N batches=N` of the calibrating verbs.
    pub fn batching(&mut self) -> Result<Batching, SessionError> {
        let batch = match self.option("batch") {
            Some(t) => self.count("batch", &t)?,
            None => DEFAULT_CALIBRATION_BATCH,
        };
        let batches = match self.option("batches") {
            Some(t) => Some(self.count("batches", &t)?),
            None => None,
        };
        Ok(Batching { batch, batches })
    }
}

/// A command's canonical text, written word by word after its verb.
pub(in crate::session) struct Line {
    spec: &'static VerbSpec,
    text: String,
}

impl Line {
    pub fn new(spec: &'static VerbSpec) -> Line {
        Line {
            spec,
            text: spec.name.to_string(),
        }
    }

    pub fn into_string(self) -> String {
        self.text
    }

    /// A word written as it is: a keyword, a number, a metric.
    pub fn word(&mut self, word: impl fmt::Display) -> &mut Line {
        self.text.push_str(&format!(" {word}"));
        self
    }

    /// A value the user chose (a name, a path), quoted when it needs to be.
    pub fn arg(&mut self, value: &str) -> &mut Line {
        self.word(quote(value))
    }

    pub fn option(&mut self, key: &str, value: impl fmt::Display) -> &mut Line {
        self.word(format!("{key}={}", quote(&value.to_string())))
    }

    /// The option, unless `value` is its default (left out, so scripts written before the
    /// option existed read the same).
    pub fn option_unless<T: fmt::Display + PartialEq>(
        &mut self,
        key: &str,
        value: T,
        default: T,
    ) -> &mut Line {
        if value != default {
            self.option(key, value);
        }
        self
    }

    /// Switch `key` (as [`Args::switch`] reads it), unless it is `default`.
    pub fn switch(&mut self, key: &str, on: bool, default: bool) -> &mut Line {
        let words = self.spec.keywords(key);
        match words.get(usize::from(on)) {
            Some(word) if on != default => self.option(key, word),
            _ => self,
        }
    }

    pub fn mode(&mut self, mode: ErrorMode) -> &mut Line {
        self.option_unless("mode", mode.name(), ErrorMode::Cumulative.name())
    }

    pub fn batching(&mut self, b: &Batching) -> &mut Line {
        self.option_unless("batch", b.batch, DEFAULT_CALIBRATION_BATCH);
        if let Some(n) = b.batches {
            self.option("batches", n);
        }
        self
    }
}

//! `diagnose`: the verb that explains the worst layers (its rules are in `session/diagnose.rs`).

use super::args::{Args, Line};
use super::{Details, Form, VerbSpec, Word, opt};
use crate::session::{Command, SessionError};

pub(super) const DIAGNOSE: VerbSpec = VerbSpec {
    name: "diagnose",
    usage: "diagnose DATA [top=3]",
    summary: "the likely cause of each of the worst layers' error, its evidence and the command that addresses it",
    details: Details::Built(crate::session::diagnose::rules_help),
    forms: &[Form::new(&[Word::Dataset], &[opt("top", Word::Text)])],
    parse: parse_diagnose,
    print: print_diagnose,
};

/// How many of the worst layers `diagnose` explains unless told.
pub(crate) const DEFAULT_TOP: usize = 3;

fn parse_diagnose(args: &mut Args) -> Result<Command, SessionError> {
    let top = match args.option("top") {
        None => DEFAULT_TOP,
        Some(t) => args.count("top", &t)?,
    };
    let [data] = args.exactly::<1>()?;
    Ok(Command::Diagnose { data, top })
}

fn print_diagnose(cmd: &Command, line: &mut Line) -> bool {
    let Command::Diagnose { data, top } = cmd else {
        return false;
    };
    line.arg(data).option_unless("top", *top, DEFAULT_TOP);
    true
}

//! The verbs that read and write files: `load` (a model or a dataset) and `save` (the model in
//! the native format, or the session as a script).

use super::args::{Args, Line};
use super::{Details, Form, VerbSpec, Word, opt};
use crate::session::{Command, SessionError};

pub(super) const LOAD: VerbSpec = VerbSpec {
    name: "load",
    usage: "load model PATH | load data NAME PATH [labels=PATH]",
    summary: "load an ONNX or .qlab model, or a .npy dataset",
    details: Details::None,
    forms: &[
        Form::new(&[Word::Keyword(&["model"]), Word::Path], &[]),
        Form::new(
            &[Word::Keyword(&["data"]), Word::Text, Word::Path],
            &[opt("labels", Word::Path)],
        ),
    ],
    parse: parse_load,
    print: print_load,
};

fn parse_load(args: &mut Args) -> Result<Command, SessionError> {
    match args.object().as_str() {
        "model" => {
            let [_, path] = args.exactly::<2>()?;
            Ok(Command::LoadModel { path })
        }
        "data" => {
            let labels = args.option("labels");
            let [_, name, path] = args.exactly::<3>()?;
            Ok(Command::LoadData { name, path, labels })
        }
        _ => Err(args.unknown_object()),
    }
}

fn print_load(cmd: &Command, line: &mut Line) -> bool {
    match cmd {
        Command::LoadModel { path } => {
            line.word("model").arg(path);
        }
        Command::LoadData { name, path, labels } => {
            line.word("data").arg(name).arg(path);
            if let Some(l) = labels {
                line.option("labels", l);
            }
        }
        _ => return false,
    }
    true
}

pub(super) const SAVE: VerbSpec = VerbSpec {
    name: "save",
    usage: "save model PATH.qlab | save session FILE.qls",
    summary: "save the model natively, or the session as a script",
    details: Details::None,
    forms: &[Form::new(
        &[Word::Keyword(&["model", "session"]), Word::Path],
        &[],
    )],
    parse: parse_save,
    print: print_save,
};

fn parse_save(args: &mut Args) -> Result<Command, SessionError> {
    let object = args.object();
    if object != "model" && object != "session" {
        return Err(args.unknown_object());
    }
    let [_, path] = args.exactly::<2>()?;
    Ok(if object == "model" {
        Command::SaveModel { path }
    } else {
        Command::SaveSession { path }
    })
}

fn print_save(cmd: &Command, line: &mut Line) -> bool {
    let (object, path) = match cmd {
        Command::SaveModel { path } => ("model", path),
        Command::SaveSession { path } => ("session", path),
        _ => return false,
    };
    line.word(object).arg(path);
    true
}

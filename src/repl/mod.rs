//! The REPL: a rustyline line editor over the session language, with completion (verbs,
//! objects, dataset names, metrics, file paths), usage hints and persistent history. Piped
//! (non-terminal) stdin is read line by line instead, so scripts can be fed to `qlab`.
//! The REPL only renders `Output`s; every command goes through `Workbench::apply`.

use crate::session::{Names, Slot, Workbench, hint, parse_line, slot};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// The rustyline helper: completion and hints from the workbench's current names.
struct QlabHelper {
    names: RefCell<Names>,
    files: FilenameCompleter,
}

impl Completer for QlabHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        match slot(&line[..pos], &self.names.borrow()) {
            Slot::Words(start, words) => Ok((
                start,
                words
                    .into_iter()
                    .map(|w| Pair {
                        display: w.clone(),
                        replacement: w,
                    })
                    .collect(),
            )),
            Slot::Path(start) => {
                let (offset, pairs) = self.files.complete(&line[start..pos], pos - start, ctx)?;
                Ok((start + offset, pairs))
            }
        }
    }
}

impl Hinter for QlabHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        (pos == line.len()).then(|| hint(line)).flatten()
    }
}

impl Highlighter for QlabHelper {}
impl Validator for QlabHelper {}
impl Helper for QlabHelper {}

fn names_of(wb: &Workbench) -> Names {
    Names {
        datasets: wb.dataset_names(),
        layers: wb
            .graph()
            .map(|g| g.nodes.iter().map(|n| n.name.clone()).collect())
            .unwrap_or_default(),
    }
}

/// Where history persists: `$QLAB_HISTORY`, else `~/.qlab_history`.
fn history_path() -> Option<PathBuf> {
    std::env::var_os("QLAB_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".qlab_history")))
}

/// Runs one line, printing its output or error; returns false on error.
fn run_line(wb: &mut Workbench, line: &str, out: &mut impl Write, err: &mut impl Write) -> bool {
    let result = parse_line(line).and_then(|cmd| match cmd {
        Some(cmd) => wb.apply(&cmd).map(Some),
        None => Ok(None),
    });
    match result {
        Ok(Some(output)) => {
            let _ = write!(out, "{output}");
            true
        }
        Ok(None) => true,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            false
        }
    }
}

/// Whether a line asks the REPL to end (`exit` or `quit`; Ctrl-D too, interactively).
fn is_quit(line: &str) -> bool {
    matches!(line.trim(), "exit" | "quit")
}

/// Reads commands from a non-terminal `input` line by line until its end or an `exit` / `quit`
/// line; returns how many lines failed.
pub fn run_piped(
    wb: &mut Workbench,
    input: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
) -> usize {
    let mut failed = 0;
    for (i, line) in input.lines().enumerate() {
        let Ok(line) = line else {
            let _ = writeln!(err, "line {}: not valid UTF-8 text", i + 1);
            failed += 1;
            continue;
        };
        if is_quit(&line) {
            break;
        }
        if !run_line(wb, &line, out, err) {
            let _ = writeln!(err, "  (at input line {})", i + 1);
            failed += 1;
        }
    }
    failed
}

/// The interactive loop (or the piped one when stdin is not a terminal). Returns the number of
/// failed commands when piped, 0 interactively.
pub fn run(mut wb: Workbench) -> Result<usize, ReadlineError> {
    // The REPL owns a plain terminal: long commands may draw a bar on stderr.
    wb.show_progress(true);
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(run_piped(
            &mut wb,
            stdin.lock(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ));
    }
    let mut rl: Editor<QlabHelper, DefaultHistory> = Editor::new()?;
    rl.set_helper(Some(QlabHelper {
        names: RefCell::new(names_of(&wb)),
        files: FilenameCompleter::new(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    // Ctrl-C during a command cancels it; at the prompt rustyline reports it as Interrupted.
    let _ = ctrlc::set_handler(crate::session::cancel::request);
    println!(
        "qlab — type `help` for the verbs, Tab to complete, Ctrl-C cancels a command, Ctrl-D or `exit` quits"
    );
    loop {
        match rl.readline("qlab> ") {
            Ok(text) => {
                // A paste arrives as one edit holding several lines: run each, as typed.
                let mut quit = false;
                for line in text.lines() {
                    if !line.trim().is_empty() {
                        let _ = rl.add_history_entry(line);
                    }
                    if is_quit(line) {
                        quit = true;
                        break;
                    }
                    crate::session::cancel::reset();
                    run_line(
                        &mut wb,
                        line,
                        &mut std::io::stdout(),
                        &mut std::io::stderr(),
                    );
                }
                if let Some(h) = rl.helper() {
                    *h.names.borrow_mut() = names_of(&wb);
                }
                if quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => println!("^C (Ctrl-D quits)"),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(0)
}

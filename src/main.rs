//! The `qlab` command line. For now it offers `qlab quantize`, a one-shot demonstration of the
//! numerics core; the REPL, TUI and replay verbs arrive with the workbench.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match qlab_cli(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qlab: {e}");
            ExitCode::from(2)
        }
    }
}

fn qlab_cli(args: &[String]) -> Result<String, String> {
    let _ = args;
    Ok(String::new())
}

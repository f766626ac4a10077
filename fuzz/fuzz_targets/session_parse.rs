#![no_main]
//! The session language on any text: parsing never panics, and every command that parses
//! prints (as `save session` writes it) to a line that parses back to the same command.

use libfuzzer_sys::fuzz_target;
use qlab::session::parse_line;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Ok(Some(cmd)) = parse_line(line) {
            let shown = cmd.to_string();
            let again = parse_line(&shown);
            assert!(
                matches!(&again, Ok(Some(c)) if *c == cmd),
                "{line:?} is written as {shown:?}, which parses to {again:?}"
            );
        }
    }
});

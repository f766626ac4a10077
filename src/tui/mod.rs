//! The full-screen front end: a ratatui interface over the same `Workbench` and session
//! language as the REPL.
//!
//! `app` holds the state and turns keys into `Command`s, `view` and `panes` only draw that
//! state, `run` owns the terminal and the event loop. Nothing here computes quantization
//! results: panes read them through the workbench's read-only views (`session::view`).

mod app;
mod keys;
mod mouse;
mod panes;
mod run;
mod speed;
mod theme;
mod view;

pub use app::{App, CommandLine, DiagnosisView, IntView, OBSERVER_CYCLE, Pane, sort_columns};
pub use keys::BINDINGS;
pub use run::{has_terminal, run};
pub use speed::SpeedState;
pub use theme::SELECTED_MARK;

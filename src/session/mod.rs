//! The session language: one `Command` type parsed from text, applied to one `Workbench`.
//!
//! The same text is typed at the REPL, at the TUI's command line and stored in `.qls` files;
//! every successful command that affects results is recorded in canonical form, so
//! `save session` writes a script that `qlab run` replays to the same numbers and reports.
//!
//! Where each verb is implemented (all as `impl Workbench` blocks; `workbench.rs` dispatches):
//! - `workbench.rs`: `load`, `save`, `show model`, `eval`, `predict`, `expect`, `help`, and the
//!   dispatcher with its history;
//! - `quantize.rs`: `engine`, `qconfig`, `fuse`, `prepare`, `calibrate`, `check`, `convert`,
//!   `quantize` (static and dynamic);
//! - `analyze.rs`: `errors`, `sensitivity`, `show qparams`;
//! - `export.rs`: `export errors`, `plot`; `pytorch.rs`: `export pytorch`;
//! - `engines.rs`: `compare engines` and the latency it can add;
//! - `reference.rs`: `compare reference`;
//! - `qat.rs`: `prepare qat`, `train`;
//! - the language: `command.rs` (`Command` and its value types), `verb/` (the verb table: one
//!   `VerbSpec` per verb with its usage, help, grammar, parser and printer), `help.rs` and
//!   `complete.rs` (both read the table);
//! - `replay.rs` (`qlab run`), `replay_report.rs` (its `--junit/--json` record), `feed.rs`
//!   (batches from datasets), `progress.rs`, `output.rs`.

mod analyze;
pub mod cancel;
mod command;
mod complete;
mod context;
pub(crate) mod diagnose;
mod engines;
mod error;
mod export;
mod feed;
mod help;
mod output;
mod paths;
mod progress;
mod pytorch;
mod qat;
mod qparams;
mod quantize;
mod reference;
mod replay;
mod replay_report;
mod search;
mod suggest;
mod verb;
pub mod view;
mod workbench;

pub use command::{
    Batching, CmpOp, Command, Expectation, Exported, Metric, ModelChoice, QConfigChoice,
    TrainOptions, parse_line,
};
pub use complete::{Names, Slot, hint, slot};
pub use diagnose::{Finding as DiagnosisFinding, LayerDiagnosis};
pub use engines::{LATENCY_REPS, SpeedJob, latency_summary};
pub use error::SessionError;
pub use output::{Output, Table};
pub use replay::{ReplayError, Step, replay_script, replay_steps};
pub use replay_report::replay_with_report;
pub use verb::{Details, Form, Opt, VERBS, VerbSpec, Word};
pub use workbench::{Workbench, batch_text, model_table};

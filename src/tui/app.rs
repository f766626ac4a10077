//! The TUI's state and its reaction to keys, kept apart from drawing so tests can drive it
//! without a terminal.
//!
//! Keys that only change the view (selection, focus, sort column, hex / decimal, scrolling)
//! change fields here. Keys that change results build the `Command` they stand for (only the
//! `:` line is parsed from text), and `App::apply` runs it through `Workbench::apply`, so the
//! command lands in the session log and `save session` captures TUI work.

use super::speed::SpeedState;
use crate::analysis::{ErrorColumn, ErrorMode};
use crate::engine::Engine;
use crate::isa::{self, Isa};
use crate::observer::ObserverKind;
use crate::qconfig::{QConfig, QuantizerSpec};
use crate::session::LayerDiagnosis;
use crate::session::view::{ActivationView, LayerRow};
use crate::session::{Command, Output, QConfigChoice, Workbench, latency_summary, parse_line};
use crate::session::{Names, Slot, slot};
use crate::workflow::QConfigKey;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use std::cell::Cell;

/// The observers the histogram pane's keys switch between, in cycle order.
pub const OBSERVER_CYCLE: [ObserverKind; 5] = [
    ObserverKind::MinMax,
    ObserverKind::Histogram,
    ObserverKind::Percentile,
    ObserverKind::Entropy,
    ObserverKind::Mse,
];

/// Log lines kept (older ones are dropped so a long session stays bounded).
const LOG_LIMIT: usize = 2000;

/// The pane that receives scrolling keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Layers,
    Histogram,
    Errors,
    IntRepr,
    Log,
}

impl Pane {
    const ORDER: [Pane; 5] = [
        Pane::Layers,
        Pane::Histogram,
        Pane::Errors,
        Pane::IntRepr,
        Pane::Log,
    ];

    fn step(self, by: isize) -> Pane {
        let i = Pane::ORDER.iter().position(|&p| p == self).unwrap_or(0) as isize;
        Pane::ORDER[(i + by).rem_euclid(Pane::ORDER.len() as isize) as usize]
    }
}

/// The error table's columns the TUI shows and sorts by: every column but `op`, in order.
pub fn sort_columns() -> impl Iterator<Item = ErrorColumn> {
    ErrorColumn::ALL
        .into_iter()
        .filter(|&c| c != ErrorColumn::Op)
}

/// The sort column after `c` (`s` cycles through them).
fn next_sort(c: ErrorColumn) -> ErrorColumn {
    let columns: Vec<ErrorColumn> = sort_columns().collect();
    let i = columns.iter().position(|&x| x == c).unwrap_or(0);
    columns[(i + 1) % columns.len()]
}

/// What the int_repr pane dumps for the selected layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntView {
    Weight,
    /// The layer's quantized output on `App::sample`.
    Activation,
}

/// How the int_repr pane prints integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpStyle {
    pub hex: bool,
    /// The float value `(q - zp) · scale` under each integer.
    pub floats: bool,
}

/// The `:` command line being edited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandLine {
    pub text: String,
    /// Candidates from the last Tab that matched more than one word.
    pub candidates: Vec<String>,
}

/// The `d` popup: a layer's diagnosis and the finding whose command Enter applies.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosisView {
    pub diagnosis: LayerDiagnosis,
    /// Index of the highlighted finding (only findings with a command are chosen).
    pub selected: Option<usize>,
}

impl DiagnosisView {
    /// The findings that carry a command, in order.
    fn actionable(&self) -> Vec<usize> {
        (0..self.diagnosis.findings.len())
            .filter(|&i| self.diagnosis.findings[i].command.is_some())
            .collect()
    }

    fn step(&mut self, by: isize) {
        let choices = self.actionable();
        if let Some(at) = self
            .selected
            .and_then(|s| choices.iter().position(|&i| i == s))
        {
            let next = at.saturating_add_signed(by).min(choices.len() - 1);
            self.selected = Some(choices[next]);
        }
    }
}

/// Everything the TUI shows besides the workbench itself.
#[derive(Debug)]
pub struct App {
    pub wb: Workbench,
    /// The dataset the error table and SQNR colours are computed on.
    pub data: Option<String>,
    /// Per-layer rows in graph order (recomputed after every command).
    pub rows: Vec<LayerRow>,
    /// Why `rows` is empty, when it is.
    pub rows_note: String,
    /// Index into `rows`.
    pub selected: usize,
    pub focus: Pane,
    pub sort: ErrorColumn,
    pub hex: bool,
    /// First line shown in the int_repr dump.
    pub int_scroll: usize,
    /// Lines scrolled back from the end of the log.
    pub log_scroll: usize,
    pub log: Vec<String>,
    pub input: Option<CommandLine>,
    pub help: bool,
    pub quit: bool,
    pub int_view: IntView,
    /// Float values under the int_repr integers.
    pub floats: bool,
    /// The input sample (of `data`) whose activations the int_repr pane shows.
    pub sample: usize,
    /// The selected layer's activation on `sample`, computed when the pane shows activations.
    pub activation: Option<Result<ActivationView, String>>,
    /// The engine-speed pane, when open.
    pub speed: Option<SpeedState>,
    /// The `d` popup, when open.
    pub diagnosis: Option<DiagnosisView>,
    /// Where the layer list was last drawn and its first visible row (for mouse clicks).
    pub layers_area: Cell<Rect>,
    pub layers_offset: Cell<usize>,
}

impl App {
    /// An app over `wb`; errors are shown on `test` when loaded, else on the first dataset.
    pub fn new(wb: Workbench) -> App {
        let names = wb.dataset_names();
        let data = names
            .iter()
            .find(|n| *n == "test")
            .or(names.first())
            .cloned();
        let mut app = App {
            wb,
            data,
            rows: Vec::new(),
            rows_note: String::new(),
            selected: 0,
            focus: Pane::Layers,
            sort: ErrorColumn::Sqnr,
            hex: false,
            int_scroll: 0,
            log_scroll: 0,
            log: Vec::new(),
            input: None,
            help: false,
            quit: false,
            int_view: IntView::Weight,
            floats: false,
            sample: 0,
            activation: None,
            speed: None,
            diagnosis: None,
            layers_area: Cell::new(Rect::default()),
            layers_offset: Cell::new(0),
        };
        app.refresh();
        app
    }

    /// How the int_repr pane prints integers.
    pub fn dump_style(&self) -> DumpStyle {
        DumpStyle {
            hex: self.hex,
            floats: self.floats,
        }
    }

    /// The selected layer's row.
    pub fn selected_row(&self) -> Option<&LayerRow> {
        self.rows.get(self.selected)
    }

    /// Row indices in the error table's order (worst first for the sort column; ties and the
    /// `Layer` column keep graph order).
    pub fn sorted(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_by(|&a, &b| {
            self.sort
                .badness(&self.rows[a].error)
                .total_cmp(&self.sort.badness(&self.rows[b].error))
        });
        order
    }

    /// Appends lines to the log.
    pub fn log_text(&mut self, text: &str) {
        self.log.extend(text.lines().map(str::to_string));
        let excess = self.log.len().saturating_sub(LOG_LIMIT);
        self.log.drain(..excess);
        self.log_scroll = 0;
    }

    /// Handles one key and applies the command it produces, if any.
    pub fn press(&mut self, key: KeyEvent) {
        if let Some(cmd) = self.handle_key(key) {
            self.apply(&cmd);
        }
    }

    /// Runs `cmd` through the workbench, logs the command and its output (or error) and
    /// recomputes the rows.
    pub fn apply(&mut self, cmd: &Command) -> Option<Output> {
        self.log_text(&format!("> {cmd}"));
        match self.wb.apply(cmd) {
            Ok(out) => {
                self.log_text(&out.to_string());
                self.refresh();
                Some(out)
            }
            Err(e) => {
                self.log_text(&format!("error: {e}"));
                None
            }
        }
    }

    /// Recomputes the per-layer rows, keeping the selected layer when it still exists.
    fn refresh(&mut self) {
        let keep = self.selected_row().map(|r| r.layer.clone());
        let rows = match &self.data {
            Some(d) => self.wb.layer_list(d, ErrorMode::Cumulative),
            None => {
                self.rows.clear();
                self.rows_note = "no dataset loaded: `load data NAME FILE.npy`".into();
                return;
            }
        };
        match rows {
            Ok(rows) => {
                self.rows = rows;
                self.rows_note.clear();
            }
            Err(e) => {
                self.rows.clear();
                self.rows_note = format!("{e}");
            }
        }
        self.selected = keep
            .and_then(|l| self.rows.iter().position(|r| r.layer == l))
            .unwrap_or(0)
            .min(self.rows.len().saturating_sub(1));
        self.update_activation();
    }

    /// Recomputes the activation dump when the int_repr pane shows activations (one forward
    /// pass of one sample, so it runs on changes, not on every frame).
    fn update_activation(&mut self) {
        self.activation = match (self.int_view, self.selected_row(), &self.data) {
            (IntView::Activation, Some(row), Some(data)) => Some(
                self.wb
                    .activation_int_repr(&row.layer, data, self.sample)
                    .map_err(|e| e.to_string()),
            ),
            _ => None,
        };
    }

    /// Takes in the engine-speed worker's progress; logs the totals when it finishes.
    pub fn tick(&mut self) {
        let Some(speed) = &mut self.speed else {
            return;
        };
        let was_running = speed.is_running();
        speed.poll();
        let line = match &*speed {
            SpeedState::Done(report) if was_running => {
                format!("engine speed: {}", latency_summary(report))
            }
            SpeedState::Failed(e) if was_running => format!("engine speed: {e}"),
            _ => return,
        };
        self.log_text(&line);
    }

    /// Opens the engine-speed pane and starts measuring on the current dataset, or closes it
    /// (cancelling a measurement in progress). Measuring changes no results, so no command is
    /// recorded; `compare engines A B DATA timing=on` is the REPL's equivalent.
    fn toggle_speed(&mut self) {
        if self.speed.take().is_some() {
            return;
        }
        let Some(data) = self.data.clone() else {
            self.log_text("engine speed: no dataset loaded");
            return;
        };
        // The process's tier and the scalar reference, so the SIMD gain is visible too.
        let tiers = match isa::selected() {
            Isa::Scalar => Vec::new(),
            best => vec![best, Isa::Scalar],
        };
        match self
            .wb
            .speed_job(&data, &[Engine::Fbgemm, Engine::Qnnpack], &tiers)
        {
            Ok(job) => {
                self.log_text(&format!(
                    "engine speed: measuring on the first sample of {data} \
                     (REPL: compare engines fbgemm qnnpack {data} timing=on)"
                ));
                self.speed = Some(SpeedState::start(job));
            }
            Err(e) => self.log_text(&format!("engine speed: {e}")),
        }
    }

    /// Maps a key to a view change, or to the command it stands for.
    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Command> {
        if self.input.is_some() {
            return self.edit_line(key);
        }
        if self.help {
            // Any key closes the help; `q` there closes help, not the app.
            self.help = false;
            return None;
        }
        if self.diagnosis.is_some() {
            return self.diagnosis_key(key);
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char(':') => self.input = Some(CommandLine::default()),
            KeyCode::Tab => self.focus = self.focus.step(1),
            KeyCode::BackTab => self.focus = self.focus.step(-1),
            KeyCode::Char('s') => self.sort = next_sort(self.sort),
            KeyCode::Char('x') => self.hex = !self.hex,
            KeyCode::Char('f') => self.floats = !self.floats,
            KeyCode::Char('e') => self.toggle_speed(),
            KeyCode::Char('d') => self.open_diagnosis(),
            KeyCode::Char('a') => {
                self.int_view = match self.int_view {
                    IntView::Weight => IntView::Activation,
                    IntView::Activation => IntView::Weight,
                };
                self.int_scroll = 0;
                self.update_activation();
            }
            KeyCode::Char(']') => self.step_sample(1),
            KeyCode::Char('[') => self.step_sample(-1),
            KeyCode::Char('o') => return self.cycle_observer(1),
            KeyCode::Char('O') => return self.cycle_observer(-1),
            KeyCode::Char(c @ '1'..='5') => {
                return self.observer_command(OBSERVER_CYCLE[c as usize - '1' as usize]);
            }
            KeyCode::Down | KeyCode::Char('j') => self.scroll(1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll(-1),
            KeyCode::PageDown => self.scroll(10),
            KeyCode::PageUp => self.scroll(-10),
            _ => {}
        }
        None
    }

    /// Moves the focused pane's cursor: the layer selection, the dump or the log.
    pub fn scroll(&mut self, by: isize) {
        let moved = |v: usize, max: usize| v.saturating_add_signed(by).min(max);
        match self.focus {
            Pane::Layers | Pane::Histogram => {
                self.select(moved(self.selected, self.rows.len().saturating_sub(1)));
            }
            Pane::Errors => {
                // Moves through the table in its sorted order.
                let order = self.sorted();
                let at = order.iter().position(|&i| i == self.selected).unwrap_or(0);
                if let Some(&i) = order.get(moved(at, order.len().saturating_sub(1))) {
                    self.select(i);
                }
            }
            Pane::IntRepr => self.int_scroll = moved(self.int_scroll, usize::MAX),
            // The log scrolls back from its end, so "down" moves towards the newest line.
            Pane::Log => {
                self.log_scroll = self
                    .log_scroll
                    .saturating_add_signed(-by)
                    .min(self.log.len().saturating_sub(1));
            }
        }
    }

    pub(super) fn select(&mut self, i: usize) {
        if i != self.selected {
            self.selected = i;
            self.int_scroll = 0;
            self.update_activation();
        }
    }

    /// Opens the `d` popup on the selected layer (or logs why it cannot).
    fn open_diagnosis(&mut self) {
        let (Some(data), Some(row)) = (self.data.clone(), self.selected_row()) else {
            self.log_text("diagnose: select a layer of a converted model with a dataset loaded");
            return;
        };
        let layer = row.layer.clone();
        match self.wb.layer_diagnosis(&data, &layer) {
            Ok(diagnosis) => {
                let mut view = DiagnosisView {
                    diagnosis,
                    selected: None,
                };
                view.selected = view.actionable().first().copied();
                self.diagnosis = Some(view);
            }
            Err(e) => self.log_text(&format!("diagnose {layer}: {e}")),
        }
    }

    /// Keys while the diagnosis popup is open: ↑/↓ choose a command, Enter applies it (as the
    /// command it names, so the session records it), anything else closes the popup.
    fn diagnosis_key(&mut self, key: KeyEvent) -> Option<Command> {
        let view = self.diagnosis.as_mut()?;
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => view.step(1),
            KeyCode::Up | KeyCode::Char('k') => view.step(-1),
            KeyCode::Enter => {
                let chosen = view
                    .selected
                    .and_then(|i| view.diagnosis.findings[i].command.clone());
                self.diagnosis = None;
                return self.parse(&chosen?);
            }
            _ => self.diagnosis = None,
        }
        None
    }

    /// The next or previous input sample for the activation dump.
    fn step_sample(&mut self, by: isize) {
        let n = self
            .data
            .as_ref()
            .and_then(|d| self.wb.dataset_len(d))
            .unwrap_or(1);
        self.sample = self
            .sample
            .saturating_add_signed(by)
            .min(n.saturating_sub(1));
        self.update_activation();
    }

    /// The next (or previous) observer in `OBSERVER_CYCLE` for the selected layer.
    fn cycle_observer(&mut self, by: isize) -> Option<Command> {
        let layer = self.selected_row()?.layer.clone();
        let current = self.wb.layer_qconfig(&layer)?.activation.observer().kind;
        let i = OBSERVER_CYCLE.iter().position(|&k| k == current);
        let next = match i {
            Some(i) => (i as isize + by).rem_euclid(OBSERVER_CYCLE.len() as isize) as usize,
            None => 0,
        };
        self.observer_command(OBSERVER_CYCLE[next])
    }

    /// `qconfig LAYER activation=KIND(...) weight=...`: the selected layer's qconfig with only
    /// the activation observer's kind changed. Built as a value, not as text to parse: the
    /// session records its canonical text, which parses back to the same command.
    fn observer_command(&mut self, kind: ObserverKind) -> Option<Command> {
        let layer = self.selected_row()?.layer.clone();
        let Some(qconfig) = self.wb.layer_qconfig(&layer) else {
            self.log_text(&format!("{layer} has no qconfig to change"));
            return None;
        };
        let QuantizerSpec::Observer(mut activation) = qconfig.activation else {
            self.log_text(&format!(
                "{layer}: fake-quant activations are switched with :qconfig"
            ));
            return None;
        };
        activation.kind = kind;
        Some(Command::QConfig {
            key: QConfigKey::Path(layer),
            choice: QConfigChoice::Custom(QConfig {
                activation: QuantizerSpec::Observer(activation),
                weight: qconfig.weight,
            }),
        })
    }

    fn parse(&mut self, line: &str) -> Option<Command> {
        match parse_line(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                self.log_text(&format!("> {line}\nerror: {e}"));
                None
            }
        }
    }

    /// Keys while the `:` line is open: Enter parses it, Esc closes it, Tab completes.
    fn edit_line(&mut self, key: KeyEvent) -> Option<Command> {
        let line = self.input.as_mut()?;
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            // Ctrl-C (or any control chord) leaves the line rather than typing a letter.
            self.input = None;
            return None;
        }
        match key.code {
            KeyCode::Esc => self.input = None,
            KeyCode::Enter => {
                let text = std::mem::take(&mut line.text);
                self.input = None;
                // `:q` as in vi; everything else is the session language.
                if matches!(text.trim(), "q" | "quit") {
                    self.quit = true;
                    return None;
                }
                return self.parse(&text);
            }
            KeyCode::Backspace => {
                line.text.pop();
                line.candidates.clear();
            }
            KeyCode::Tab => {
                let names = Names {
                    datasets: self.wb.dataset_names(),
                    layers: self.rows.iter().map(|r| r.layer.clone()).collect(),
                };
                complete(line, &names);
            }
            KeyCode::Char(c) => {
                line.text.push(c);
                line.candidates.clear();
            }
            _ => {}
        }
        None
    }
}

/// Completes the word at the end of the line with the REPL's rules: one candidate replaces the
/// word (plus a space unless it ends in `=`), several extend it to their common prefix and are
/// listed. File paths are left to the user.
fn complete(line: &mut CommandLine, names: &Names) {
    let Slot::Words(start, words) = slot(&line.text, names) else {
        return;
    };
    let Some(first) = words.first() else {
        return;
    };
    let common = words.iter().fold(first.as_str(), |acc, w| {
        let n = acc
            .char_indices()
            .zip(w.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8());
        &acc[..n]
    });
    let mut text = format!("{}{common}", &line.text[..start]);
    if words.len() == 1 && !common.ends_with('=') {
        text.push(' ');
    }
    line.candidates = if words.len() > 1 {
        words.clone()
    } else {
        Vec::new()
    };
    line.text = text;
}

//! The TUI on the digits CNN: every pane rendered to a `TestBackend` and snapshotted at 120×40
//! and 80×24 (text only; colours are checked separately), and the app driven key by key —
//! select a layer, switch its observer, `:save session` — with the saved file replayed
//! headlessly to the same per-layer error table.

use qlab::session::{Command, Output, Workbench, parse_line, replay_script};
use qlab::tui::{App, Pane};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use std::path::Path;

const SIZES: [(u16, u16); 2] = [(120, 40), (80, 24)];

fn cmd(line: &str) -> Command {
    parse_line(line).unwrap().unwrap()
}

/// The digits CNN with relative paths (so nothing machine-specific reaches the screen),
/// quantized on `calib`, as `qlab tui` starts.
fn app() -> App {
    let mut wb = Workbench::new();
    for line in [
        "load model sample-models/digits_cnn.onnx",
        "load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy",
        "load data calib sample-models/data/digits_calib_x.npy",
    ] {
        wb.apply(&cmd(line)).unwrap();
    }
    let mut app = App::new(wb);
    app.apply(&cmd("quantize calib")).unwrap();
    app
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        app.press(key(KeyCode::Char(c)));
    }
}

fn render(app: &App, (w, h): (u16, u16)) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|frame| app.draw(frame)).unwrap();
    terminal
}

/// Snapshots the screen at both sizes as `NAME_WxH`.
fn snapshot(app: &App, name: &str) {
    for size in SIZES {
        let terminal = render(app, size);
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), terminal.backend());
    }
}

#[test]
fn start_screen_layers_histogram_errors_int_repr_log() {
    snapshot(&app(), "start");
}

#[test]
fn selected_layer_drives_histogram_and_int_repr_in_hex() {
    let mut app = app();
    press(&mut app, "jx");
    app.focus = Pane::IntRepr;
    snapshot(&app, "conv1_hex");
}

#[test]
fn observer_switch_updates_range_and_error() {
    let mut app = app();
    press(&mut app, "j");
    let before = app.selected_row().unwrap().error.stats.sqnr_db();
    press(&mut app, "1");
    let row = app.selected_row().unwrap();
    assert_eq!(row.layer, "conv1");
    assert!(row.qconfig.starts_with("minmax"), "{}", row.qconfig);
    assert_ne!(row.error.stats.sqnr_db(), before);
    let view = app.wb.observer_histogram("conv1").unwrap();
    assert!(view.spec.starts_with("minmax"));
    snapshot(&app, "conv1_minmax");
}

#[test]
fn error_table_sorted_by_mse() {
    let mut app = app();
    press(&mut app, "ss");
    app.focus = Pane::Errors;
    snapshot(&app, "sorted_mse");
}

#[test]
fn help_popup_and_command_line_completion() {
    let mut app = app();
    press(&mut app, "?");
    snapshot(&app, "help");
    press(&mut app, " ");
    assert!(!app.help);
    press(&mut app, ":er");
    app.press(key(KeyCode::Tab));
    press(&mut app, "t");
    app.press(key(KeyCode::Tab));
    assert_eq!(app.input.as_ref().unwrap().text, "errors test ");
    press(&mut app, "mode=");
    snapshot(&app, "command_line");
}

#[test]
fn sqnr_is_coloured_by_severity() {
    let app = app();
    let terminal = render(&app, (120, 40));
    let buffer = terminal.backend().buffer();
    // The layer list's SQNR column: every layer of the digits CNN is above 30 dB.
    let row = app.rows.iter().position(|r| r.layer == "conv3").unwrap() as u16;
    let y = 2 + row;
    let cells: Vec<Color> = (0..60)
        .map(|x| buffer[(x, y)].fg)
        .filter(|c| *c != Color::Reset)
        .collect();
    assert!(cells.contains(&Color::Green), "{cells:?}");
}

#[test]
fn bad_command_line_input_is_logged_not_fatal() {
    let mut app = app();
    press(&mut app, ":frobnicate now");
    app.press(key(KeyCode::Enter));
    press(&mut app, ":calibrate nowhere");
    app.press(key(KeyCode::Enter));
    assert!(app.log.iter().filter(|l| l.starts_with("error")).count() >= 2);
    assert!(!app.quit);
    press(&mut app, ":q");
    app.press(key(KeyCode::Enter));
    assert!(app.quit);
}

fn errors_table(wb: &mut Workbench) -> Output {
    wb.apply(&cmd("errors test")).unwrap()
}

#[test]
fn keys_land_in_the_session_and_replay_to_the_same_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tui-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tui.qls");
    let _ = std::fs::remove_file(&file);
    let mut app = app();
    // conv2, then its observer: the next one after histogram, then the entropy calibrator.
    press(&mut app, "jjo4");
    assert_eq!(app.selected_row().unwrap().layer, "conv2");
    press(&mut app, &format!(":save session {}", file.display()));
    app.press(key(KeyCode::Enter));
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains("qconfig conv2 activation=entropy"),
        "{saved}"
    );
    let mut replayed = Workbench::new();
    replay_script(&saved, &mut replayed, |_, _| {}).unwrap();
    assert_eq!(errors_table(&mut replayed), errors_table(&mut app.wb));
    // And the TUI's own rows agree with the replayed table.
    let Output::Table { table, .. } = errors_table(&mut replayed) else {
        panic!("errors gives a table");
    };
    for r in &app.rows {
        let line = table.rows.iter().find(|l| l[0] == r.layer).unwrap();
        assert_eq!(line[2], format!("{:.2}", r.error.stats.sqnr_db()));
    }
}

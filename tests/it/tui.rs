//! The TUI on the digits CNN: every pane rendered to a `TestBackend` and snapshotted at 120×40
//! and 80×24 (text only; colours are checked separately), and the app driven key by key —
//! select a layer, switch its observer, `:save session` — with the saved file replayed
//! headlessly to the same per-layer error table.

use qlab::analysis::{LatencyReport, LayerLatency};
use qlab::session::{Command, Output, Workbench, parse_line, replay_script};
use qlab::tui::{App, Pane, SpeedState};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
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
    // The saved paths are relative to the session file, as `qlab run` resolves them.
    let mut replayed = Workbench::new();
    replayed.set_base_dir(&dir);
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

/// A fixed latency report over the app's layers (real timings would change every run).
fn fixed_speed(app: &App) -> LatencyReport {
    let rows = app
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| LayerLatency {
            layer: r.layer.clone(),
            op: r.op,
            fp32_ms: Some(0.01 * (i + 1) as f64),
            ms: vec![Some(0.004 * (i + 1) as f64), Some(0.005 * (i + 1) as f64)],
        })
        .collect();
    LatencyReport {
        columns: vec!["fbgemm@avx2".into(), "qnnpack@avx2".into()],
        rows,
        reps: 20,
        samples: 1,
    }
}

#[test]
fn engine_speed_pane_with_an_injected_result() {
    let mut app = app();
    press(&mut app, "jj");
    app.speed = Some(SpeedState::Done(fixed_speed(&app)));
    snapshot(&app, "speed");
}

#[test]
fn engine_speed_measures_in_the_background() {
    let mut app = app();
    press(&mut app, "e");
    // No tick yet: the pane shows the gauge while the worker runs.
    let terminal = render(&app, (120, 40));
    let screen = format!("{:?}", terminal.backend());
    assert!(screen.contains("measuring"), "{screen}");
    // Keys still work while it measures.
    press(&mut app, "j");
    assert_eq!(app.selected_row().unwrap().layer, "conv1");
    while app.speed.as_ref().unwrap().is_running() {
        app.tick();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let Some(SpeedState::Done(report)) = &app.speed else {
        panic!("{:?}", app.speed);
    };
    assert_eq!(report.columns.len() % 2, 0, "{:?}", report.columns);
    assert!(report.columns[0].starts_with("fbgemm"));
    for r in &app.rows {
        let t = report.rows.iter().find(|t| t.layer == r.layer).unwrap();
        assert!(t.ms.iter().all(|m| m.unwrap() > 0.0), "{t:?}");
    }
    for t in &report.rows {
        assert!(t.fp32_ms.is_some() || t.ms.iter().any(Option::is_some));
        assert!(t.fp32_ms.is_none_or(|m| m > 0.0), "{t:?}");
    }
    let sum: f64 = report.rows.iter().filter_map(|t| t.ms[0]).sum();
    assert!((report.total_ms(0) - sum).abs() <= 1e-12 * sum);
    let fp32: f64 = report.rows.iter().filter_map(|t| t.fp32_ms).sum();
    assert!((report.speedup(0) - fp32 / sum).abs() <= 1e-9 * report.speedup(0));
    assert!(
        app.log
            .iter()
            .any(|l| l.starts_with("engine speed: latency"))
    );
    // Closing the pane drops the result; nothing was recorded in the session.
    press(&mut app, "e");
    assert!(app.speed.is_none());
    assert!(!app.wb.session_text().contains("compare"));
}

#[test]
fn closing_the_speed_pane_cancels_the_measurement() {
    let mut app = app();
    press(&mut app, "ee");
    assert!(app.speed.is_none());
    assert!(!app.quit);
}

fn mouse(kind: MouseEventKind, column: u16, row: u16) -> MouseEvent {
    MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    }
}

#[test]
fn clicking_a_layer_selects_it_and_the_wheel_moves_the_selection() {
    let mut app = app();
    app.focus = Pane::Errors;
    render(&app, (120, 40));
    let conv3 = app.rows.iter().position(|r| r.layer == "conv3").unwrap();
    // Border and header above the first row.
    let y = 2 + conv3 as u16;
    app.mouse(mouse(MouseEventKind::Down(MouseButton::Left), 5, y));
    assert_eq!(app.selected_row().unwrap().layer, "conv3");
    assert_eq!(app.focus, Pane::Layers);
    app.mouse(mouse(MouseEventKind::ScrollDown, 5, y));
    assert_eq!(app.selected, conv3 + 1);
    app.mouse(mouse(MouseEventKind::ScrollUp, 5, y));
    app.mouse(mouse(MouseEventKind::ScrollUp, 5, y));
    assert_eq!(app.selected, conv3 - 1);
    // The header, the border and other panes select nothing.
    for (x, y) in [(5, 1), (5, 0), (100, 30)] {
        app.mouse(mouse(MouseEventKind::Down(MouseButton::Left), x, y));
        assert_eq!(app.selected, conv3 - 1);
    }
    // Clicks produce no command.
    assert!(!app.wb.session_text().contains("conv3"));
}

#[test]
fn int_repr_shows_the_output_activation_of_a_sample() {
    let mut app = app();
    press(&mut app, "ja");
    app.focus = Pane::IntRepr;
    let Some(Ok(first)) = app.activation.clone() else {
        panic!("{:?}", app.activation);
    };
    assert_eq!(first.shape[..2], [1, 16]);
    assert!(first.data.iter().all(|&v| (0..=255).contains(&v)));
    snapshot(&app, "conv1_activation");
    // `f`: the float value (q - zp) · scale under each integer.
    press(&mut app, "f");
    let screen = format!("{:?}", render(&app, (120, 40)).backend());
    let float = (first.data[0] as f64 - first.zero_point as f64) * first.scale;
    assert!(screen.contains(&format!("{float:.4}")), "{screen}");
    press(&mut app, "f]");
    assert_eq!(app.sample, 1);
    let Some(Ok(second)) = &app.activation else {
        panic!("{:?}", app.activation);
    };
    assert_ne!(second.data, first.data);
    press(&mut app, "[[a");
    assert_eq!(app.sample, 0);
    assert!(app.activation.is_none());
}

/// The digits CNN with its modules renamed to MobileNetV2-length paths
/// (`features.13.conv.1.conv2`), saved natively and quantized as `qlab tui` starts.
fn long_path_app() -> App {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut graph =
        qlab::import::onnx::load_onnx(&root.join("sample-models/digits_cnn.onnx")).unwrap();
    for (i, node) in graph.nodes.iter_mut().enumerate() {
        node.name = format!("features.{}.conv.{}.{}", 10 + i, i % 3, node.name);
    }
    let dir = root.join("target/tui-tests");
    std::fs::create_dir_all(&dir).unwrap();
    qlab::import::native::save_native(&graph, &dir.join("long_paths.qlab")).unwrap();
    let mut wb = Workbench::new();
    for line in [
        "load model target/tui-tests/long_paths.qlab",
        "load data calib sample-models/data/digits_calib_x.npy",
    ] {
        wb.apply(&cmd(line)).unwrap();
    }
    let mut app = App::new(wb);
    app.apply(&cmd("quantize calib")).unwrap();
    app
}

/// Long module paths: at 120×40 every path is whole; at 80×24 the error table's paths lose
/// their middle, not their leaf; the worst rows stay in view when the selection is the last
/// layer; the selected row is marked in both tables.
#[test]
fn long_module_paths_stay_readable_and_the_worst_rows_visible() {
    let mut app = long_path_app();
    let last = app.rows.len() - 1;
    for _ in 0..last {
        app.press(key(KeyCode::Down));
    }
    let selected = app.selected_row().unwrap().layer.clone();
    let worst = app.rows[app.sorted()[0]].layer.clone();
    snapshot(&app, "long_paths");
    for size in SIZES {
        let screen = format!("{}", render(&app, size).backend());
        let leaf = selected.rsplit('.').next().unwrap();
        let mark = format!("{}{}", qlab::tui::SELECTED_MARK, &selected[..6]);
        assert!(
            screen.matches(&mark).count() == 2,
            "the selection is marked in both tables at {size:?}:\n{screen}"
        );
        assert!(screen.contains(leaf), "{leaf} at {size:?}:\n{screen}");
        let worst_head = &worst[..8];
        assert!(
            screen.matches(worst_head).count() >= 2,
            "the worst row stays visible at {size:?}:\n{screen}"
        );
    }
    let wide = format!("{}", render(&app, (120, 40)).backend());
    assert!(wide.contains(&selected), "{wide}");
    let narrow = format!("{}", render(&app, (80, 24)).backend());
    assert!(narrow.contains('…'), "{narrow}");
}

/// The speed pane beside MobileNet-length paths: the totals row and every engine's time and
/// ratio stay whole at 80×24 (paths give up their middle instead).
#[test]
fn speed_pane_totals_stay_whole_beside_long_paths() {
    let mut app = long_path_app();
    app.speed = Some(SpeedState::Done(fixed_speed(&app)));
    snapshot(&app, "long_paths_speed");
    for size in SIZES {
        let screen = format!("{}", render(&app, size).backend());
        let total = screen
            .lines()
            .find(|l| l.contains("total "))
            .unwrap_or_else(|| panic!("no totals row at {size:?}:\n{screen}"));
        // fp32 total 0.01·(1+…+n), engines 0.4 and 0.5 of it: both ratios printed in full.
        assert!(
            total.contains("2.50x") && total.contains("2.00x"),
            "{size:?}: {total}"
        );
    }
}

/// `d` on a layer whose range was cut (conv2 at the 90th percentile): the popup shows the
/// clipping cause with its re-derived SQNR and the command; Enter applies that command
/// through the workbench (so the session records it) and the layer's SQNR rises.
#[test]
fn diagnosis_popup_applies_its_command() {
    let mut app = app();
    app.apply(&cmd("qconfig conv2 activation=percentile(p=90)"))
        .unwrap();
    while app.selected_row().unwrap().layer != "conv2" {
        press(&mut app, "j");
    }
    let at = app.selected;
    let before = app.rows[at].error.stats.sqnr_db();
    press(&mut app, "d");
    let view = app.diagnosis.clone().expect("the popup is open");
    let chosen = &view.diagnosis.findings[view.selected.expect("a command to apply")];
    assert_eq!(chosen.cause, "clipping", "{view:#?}");
    assert!(chosen.evidence.contains("re-derived: minmax"), "{chosen:?}");
    let command = chosen.command.clone().unwrap();
    assert!(
        command.starts_with("qconfig conv2 activation=minmax"),
        "{command}"
    );
    snapshot(&app, "diagnosis_popup");
    app.press(key(KeyCode::Enter));
    assert!(app.diagnosis.is_none());
    assert!(
        app.log.iter().any(|l| *l == format!("> {command}")),
        "{:?}",
        app.log
    );
    let after = app.rows[at].error.stats.sqnr_db();
    assert!(after > before + 3.0, "{before} -> {after}");
    // Esc closes the popup without applying anything.
    press(&mut app, "d");
    assert!(app.diagnosis.is_some());
    let logged = app.log.len();
    app.press(key(KeyCode::Esc));
    assert!(app.diagnosis.is_none());
    assert_eq!(app.log.len(), logged);
}

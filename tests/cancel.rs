//! Cancelling (Ctrl-C in the REPL). The cancel flag is process-wide, so this test has a test
//! binary of its own: in another binary's process it would cancel unrelated tests' commands.

use qlab::session::{Workbench, parse_line, replay_script};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A cancelled command (Ctrl-C in the REPL) stops with `Cancelled` and leaves the workbench as
/// it was: the earlier calibration and converted model are still there.
#[test]
fn a_cancelled_command_changes_nothing() {
    use qlab::session::cancel;
    std::env::set_current_dir(root()).unwrap();
    let mut wb = Workbench::new();
    let setup = "load model sample-models/digits_cnn.onnx\n\
                 load data calib sample-models/data/digits_calib_x.npy\n\
                 load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy\n\
                 quantize calib batches=2\n";
    replay_script(setup, &mut wb, |_, _| {}).unwrap();
    let before = wb
        .apply(&parse_line("show qparams").unwrap().unwrap())
        .unwrap()
        .to_string();
    for line in [
        "calibrate calib",
        "eval test",
        "sensitivity test calib=calib batches=1",
    ] {
        cancel::request();
        let err = wb.apply(&parse_line(line).unwrap().unwrap()).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{line}: {err}");
    }
    cancel::reset();
    let after = wb
        .apply(&parse_line("show qparams").unwrap().unwrap())
        .unwrap()
        .to_string();
    assert_eq!(before, after);
    assert!(!wb.session_text().contains("calibrate calib\n"));
}

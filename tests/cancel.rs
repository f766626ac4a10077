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
    a_cancelled_train_leaves_the_model_untouched();
}

/// `train` is cancellable between mini-batches and transactional: a cancelled run leaves the QAT
/// model as it was, so training afterwards gives exactly what a fresh session gives. (Called
/// from the one test: the cancel flag is process-wide, so two tests would race on it.)
fn a_cancelled_train_leaves_the_model_untouched() {
    use qlab::session::cancel;
    std::env::set_current_dir(root()).unwrap();
    let setup = "load model sample-models/digits_mlp.onnx\n\
                 load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy\n\
                 prepare qat\n";
    let train = parse_line("train test epochs=1 batch=64").unwrap().unwrap();
    let mut fresh = Workbench::new();
    replay_script(setup, &mut fresh, |_, _| {}).unwrap();
    let want = fresh.apply(&train).unwrap().to_string();

    let mut wb = Workbench::new();
    replay_script(setup, &mut wb, |_, _| {}).unwrap();
    cancel::request();
    let err = wb.apply(&train).unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    cancel::reset();
    assert_eq!(wb.apply(&train).unwrap().to_string(), want);
}

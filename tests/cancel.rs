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
        "search test calib=calib target=accuracy>=0.99496",
    ] {
        cancel::request();
        let err = wb.apply(&parse_line(line).unwrap().unwrap()).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{line}: {err}");
    }
    // Mid-run: a search stops between (or inside) its model builds, its ranking included.
    cancel::reset();
    let requester = std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        cancel::request();
    });
    let search = "search test calib=calib target=sqnr>=500 max_float=2";
    let err = wb.apply(&parse_line(search).unwrap().unwrap()).unwrap_err();
    requester.join().unwrap();
    assert!(
        matches!(err, qlab::session::SessionError::Cancelled),
        "{search}: {err}"
    );
    cancel::reset();
    let after = wb
        .apply(&parse_line("show qparams").unwrap().unwrap())
        .unwrap()
        .to_string();
    assert_eq!(before, after);
    assert!(!wb.session_text().contains("calibrate calib\n"));
    assert!(!wb.session_text().contains("qconfig"));
    a_cancelled_train_leaves_the_model_untouched();
    long_commands_stop_inside_a_model_run();
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

/// A cancel request stops a command inside a model run, not only between batches: `errors`
/// (both modes), `compare engines` and `eval` on a large set return `Cancelled` soon after the
/// request, against the seconds the full command takes. (Called from the one test, as above.)
fn long_commands_stop_inside_a_model_run() {
    use qlab::graph::Value;
    use qlab::import::npy::{read_npy, write_npy_f32};
    use qlab::session::cancel;
    use std::time::{Duration, Instant};
    std::env::set_current_dir(root()).unwrap();
    // The digits test set 64 times over: one batch whose model run takes seconds.
    let Value::F32(x) = read_npy(Path::new("sample-models/data/digits_test_x.npy")).unwrap() else {
        panic!("float inputs")
    };
    let views: Vec<_> = (0..64).map(|_| x.view()).collect();
    let big = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
    let dir = root().join("target/cancel-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let big_path = dir.join("big_x.npy");
    write_npy_f32(&big_path, &big).unwrap();
    let setup = format!(
        "load model sample-models/digits_cnn.onnx\n\
         load data calib sample-models/data/digits_calib_x.npy\n\
         load data big \"{}\"\n\
         quantize calib batches=2\n",
        big_path.display()
    );
    let mut wb = Workbench::new();
    replay_script(&setup, &mut wb, |_, _| {}).unwrap();
    let mut latencies = Vec::new();
    for line in [
        "errors big",
        "errors big mode=isolated",
        "compare engines fbgemm qnnpack big",
        "calibrate big",
    ] {
        cancel::reset();
        let cmd = parse_line(line).unwrap().unwrap();
        let requester = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            cancel::request();
            Instant::now()
        });
        let err = wb.apply(&cmd).unwrap_err();
        let stopped = Instant::now();
        let latency = stopped.saturating_duration_since(requester.join().unwrap());
        assert!(err.to_string().contains("cancelled"), "{line}: {err}");
        latencies.push((line, latency));
    }
    cancel::reset();
    // Cancelled runs cache nothing: this is the first full `errors` run.
    let full = Instant::now();
    wb.apply(&parse_line("errors big").unwrap().unwrap())
        .unwrap();
    let full = full.elapsed();
    for (line, latency) in latencies {
        println!("{line}: stopped {latency:?} after the request (a full `errors` run: {full:?})");
        assert!(
            latency < Duration::from_millis(500).max(full / 4),
            "{line}: {latency:?} after the request"
        );
    }
}

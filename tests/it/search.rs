//! `search`: on the digits CNN (fbgemm, 394/397 quantized against float's 395/397) it finds a
//! configuration meeting float's accuracy, applies it as recorded `qconfig` lines and
//! `quantize`, and the session's `eval` and a replay of the saved script give the figure the
//! search verified; a target already met changes nothing; bad input is refused with a typed
//! error and leaves the workbench as it was.

use qlab::session::{Output, SessionError, Workbench, parse_line, replay_script};

const DIGITS: [&str; 3] = [
    "load model sample-models/digits_cnn.onnx",
    "load data calib sample-models/data/digits_calib_x.npy",
    "load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy",
];

fn digits() -> Workbench {
    let mut wb = Workbench::new();
    wb.set_base_dir(crate::support::root());
    for line in DIGITS.iter().chain(&["quantize calib"]) {
        wb.apply(&parse_line(line).unwrap().unwrap()).unwrap();
    }
    wb
}

fn apply(wb: &mut Workbench, line: &str) -> Result<Output, SessionError> {
    wb.apply(&parse_line(line).unwrap().unwrap())
}

fn quantized_accuracy_line(wb: &mut Workbench) -> String {
    let eval = apply(wb, "eval test").unwrap().to_string();
    eval.lines()
        .find(|l| l.starts_with("quantized"))
        .unwrap_or_else(|| panic!("{eval}"))
        .to_string()
}

#[test]
fn digits_search_meets_float_accuracy_and_records_its_commands() {
    let mut wb = digits();
    assert!(quantized_accuracy_line(&mut wb).contains("0.992443 (394/397)"));
    let before = wb.log().len();
    let out = apply(&mut wb, "search test calib=calib target=accuracy>=0.99496")
        .unwrap()
        .to_string();
    crate::support::note(format_args!("digits search:\n{out}"));
    assert!(
        out.contains("verified from scratch (prepare, calibrate, convert): 0.994962 on test"),
        "{out}"
    );
    // The trail starts from the session's qconfigs and names every module it tried.
    assert!(
        out.contains("session qconfigs") && out.contains("0.992443"),
        "{out}"
    );
    // What the search settled on (measured: conv2's activation clipped at the 99.99th
    // percentile recovers the one sample; no module needs float), recorded in place of the
    // search line itself.
    let recorded: Vec<String> = wb.log()[before..].iter().map(|c| c.to_string()).collect();
    assert_eq!(
        recorded,
        [
            "qconfig conv2 activation=percentile(reduce_range=true)",
            "quantize calib"
        ]
    );
    assert!(!wb.session_text().contains("search"));
    // The session's model is the verified one.
    let after = quantized_accuracy_line(&mut wb);
    assert!(
        after.contains("0.994962 (395/397)"),
        "eval after search: {after}"
    );
    apply(&mut wb, "expect quantized_accuracy(test) >= 0.99496").unwrap();
    // The saved script replays to the same model without searching.
    let mut replayed = Workbench::new();
    replayed.set_base_dir(crate::support::root());
    replay_script(&wb.session_text(), &mut replayed, |_, _| {}).unwrap();
    assert_eq!(quantized_accuracy_line(&mut replayed), after);
}

#[test]
fn a_target_already_met_changes_nothing() {
    let mut wb = digits();
    let before = (quantized_accuracy_line(&mut wb), wb.session_text());
    let out = apply(&mut wb, "search test calib=calib target=accuracy>=0.99")
        .unwrap()
        .to_string();
    assert!(
        out.contains("target accuracy>=0.99 already met (0.992443): nothing changed"),
        "{out}"
    );
    assert_eq!(wb.session_text(), before.1);
    assert_eq!(quantized_accuracy_line(&mut wb), before.0);
}

#[test]
fn bad_targets_and_data_are_refused_and_change_nothing() {
    for (line, says) in [
        (
            "search test calib=calib target=accuracy>=1.5",
            "accuracy is a fraction of samples, 0..1, so 1.5 can never be met",
        ),
        (
            "search test calib=calib target=loss<=3",
            "the target is accuracy>=X (a fraction 0..1) or sqnr>=Y (dB)",
        ),
        (
            "search test calib=calib target=sqnr>=x",
            "'x' is not a number",
        ),
        ("search test target=sqnr>=30", "search needs calib=DATA"),
        ("search test calib=calib", "search needs target="),
        (
            "search test calib=calib target=sqnr>=30 max_float=-1",
            "max_float=-1 is not a count of modules",
        ),
    ] {
        let err = parse_line(line).unwrap_err().to_string();
        assert!(err.contains(says), "{line}: {err}");
        assert!(err.contains("usage: search DATA calib=CALIB"), "{err}");
    }
    let mut wb = digits();
    let before = (quantized_accuracy_line(&mut wb), wb.session_text());
    for (line, says) in [
        (
            "search nope calib=calib target=sqnr>=30",
            "no dataset named 'nope'",
        ),
        (
            "search test calib=nope target=sqnr>=30",
            "no dataset named 'nope'",
        ),
        // Accuracy needs labels: calib has none.
        (
            "search calib calib=calib target=accuracy>=0.9",
            "dataset 'calib' has no labels",
        ),
        // Out of reach: every ranked module in float is measured before any one is chosen.
        // (The whole model in float is float's 395/397: sqnr>=500 is met that way, with inf dB.)
        (
            "search test calib=calib target=accuracy>=1",
            "no configuration meets the target accuracy>=1: even with all 5 ranked modules in float (and the observer choices above) the accuracy on test is 0.994962",
        ),
        (
            "search test calib=calib target=sqnr>=500 max_float=2",
            "no configuration meets the target sqnr>=500 within max_float=2; best found: 37.458 dB (2 module(s) in float: fc, conv2; 3 observer change(s))",
        ),
        // Observers only.
        (
            "search test calib=calib target=sqnr>=500 max_float=0",
            "no configuration meets the target sqnr>=500 within max_float=0; best found: 34.902 dB (0 module(s) in float: -; 5 observer change(s))",
        ),
    ] {
        let err = apply(&mut wb, line).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(says), "{line}: {text}");
        if line.contains(">=500") || line.contains(">=1 ") || line.ends_with(">=1") {
            assert!(matches!(err, SessionError::SearchUnmet { .. }), "{err:?}");
            // The trail comes with the refusal.
            assert!(text.contains("session qconfigs"), "{text}");
        }
    }
    assert_eq!(
        wb.session_text(),
        before.1,
        "a refused search records nothing"
    );
    assert_eq!(
        quantized_accuracy_line(&mut wb),
        before.0,
        "a refused search changes nothing"
    );
}

#[test]
fn help_search_explains_the_algorithm_and_the_targets() {
    let text = apply(&mut Workbench::new(), "help search")
        .unwrap()
        .to_string();
    for part in [
        "target=accuracy>=X|sqnr>=Y",
        "max_float",
        "all_but_this",
        "re-derived",
        "verify",
        "save session",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
}

//! `diagnose` on the digits CNN made to fail in known ways: a 2-bit conv3 weight (its own loss),
//! conv2's range cut at the 90th percentile (clipping), and the shift the damage leaves at fc.
//! Every cause carries its numbers and the command that addresses it; nothing changes.

use qlab::session::{Output, Workbench, parse_line};

fn table(out: Output) -> Vec<Vec<String>> {
    match out {
        Output::Table { table, .. } => table.rows,
        other => panic!("diagnose prints a table, got {other}"),
    }
}

#[test]
fn diagnose_names_each_cause_with_evidence_and_a_command() {
    let mut wb = Workbench::new();
    wb.set_base_dir(crate::support::root());
    let mut apply = |line: &str| wb.apply(&parse_line(line).unwrap().unwrap()).unwrap();
    for line in [
        "load model sample-models/digits_cnn.onnx",
        "load data calib sample-models/data/digits_calib_x.npy",
        "load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy",
        "qconfig conv2 activation=percentile(p=90)",
        "qconfig conv3 weight=\"minmax(dtype=qint8, qscheme=per_tensor_symmetric, quant_min=-2, quant_max=1)\"",
        "quantize calib",
    ] {
        apply(line);
    }
    let before = apply("eval test").to_string();
    let rows = table(apply("diagnose test top=9"));
    let find = |layer: &str, cause: &str| {
        rows.iter()
            .find(|r| r[0] == layer && r[2] == cause)
            .unwrap_or_else(|| panic!("no {cause} for {layer}: {rows:#?}"))
            .clone()
    };
    let own = find("conv3", "own loss");
    assert_eq!(own[4], "qconfig conv3 none");
    let db: f64 = own[3]
        .trim_start_matches("isolated SQNR ")
        .trim_end_matches(" dB")
        .parse()
        .unwrap();
    assert!(db < 20.0, "{own:?}");
    let clip = find("conv2", "clipping");
    assert_eq!(clip[4], "qconfig conv2 activation=minmax");
    assert!(clip[3].ends_with("% of outputs clipped"), "{clip:?}");
    assert_eq!(find("fc", "shift")[4], "correct bias test");
    // Worst first, and every cause shows a number.
    let sqnr: Vec<f64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(sqnr.windows(2).all(|w| w[0] <= w[1]), "{sqnr:?}");
    for r in &rows {
        assert!(
            r[3].chars().any(|c| c.is_ascii_digit()),
            "no evidence number: {r:?}"
        );
    }
    // Each suggested command is a valid session line.
    for r in rows.iter().filter(|r| r[4] != "-") {
        assert!(parse_line(&r[4]).is_ok(), "{r:?}");
    }
    assert_eq!(
        apply("eval test").to_string(),
        before,
        "diagnose changes nothing"
    );
    assert!(
        !parse_line("diagnose test")
            .unwrap()
            .unwrap()
            .changes_state()
    );
}

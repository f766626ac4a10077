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
            .find(|r| r[0] == layer && r[3] == cause)
            .unwrap_or_else(|| panic!("no {cause} for {layer}: {rows:#?}"))
            .clone()
    };
    let own = find("conv3", "own loss");
    assert_eq!(own[5], "qconfig conv3 none");
    let db: f64 = own[4]
        .trim_start_matches("isolated SQNR ")
        .trim_end_matches(" dB")
        .parse()
        .unwrap();
    assert!(db < 20.0, "{own:?}");
    let clip = find("conv2", "clipping");
    assert_eq!(clip[5], "qconfig conv2 activation=minmax");
    assert!(
        clip[4].contains("% of outputs clipped; re-derived: minmax "),
        "{clip:?}"
    );
    // The SQNR the re-derived calibrator would give: conv2's and the output's (fc's).
    let after = |key: &str| -> f64 {
        let at = clip[4]
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {clip:?}"))
            + key.len();
        let text: String = clip[4][at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .collect();
        text.parse().unwrap()
    };
    let (conv2_db, output_db) = (after("re-derived: minmax "), after("dB (output "));
    assert_eq!(find("fc", "shift")[5], "correct bias test");
    // The layers adding the most noise first: 10^(-sqnr/10) - 10^(-(sqnr + drop)/10), from
    // the printed (rounded) columns, never rises down the table.
    let added: Vec<f64> = rows
        .iter()
        .map(|r| {
            let (db, drop): (f64, f64) = (r[1].parse().unwrap(), r[2].parse().unwrap());
            10f64.powf(-db / 10.0) - 10f64.powf(-(db + drop) / 10.0)
        })
        .collect();
    assert!(
        added.windows(2).all(|w| w[0] + 1e-2 * w[1].abs() >= w[1]),
        "{added:?} {rows:#?}"
    );
    for r in &rows {
        assert!(
            r[4].chars().any(|c| c.is_ascii_digit()),
            "no evidence number: {r:?}"
        );
    }
    // Each suggested command is a valid session line.
    for r in rows.iter().filter(|r| r[5] != "-") {
        assert!(parse_line(&r[5]).is_ok(), "{r:?}");
    }
    assert_eq!(
        apply("eval test").to_string(),
        before,
        "diagnose changes nothing"
    );
    // Running the suggested command gives the SQNR diagnose re-derived, without calibrating.
    apply(&clip[5]);
    apply("convert");
    for (layer, db) in [("conv2", conv2_db), ("fc", output_db)] {
        apply(&format!("expect sqnr(test,{layer}) >= {}", db - 0.006));
        apply(&format!("expect sqnr(test,{layer}) < {}", db + 0.006));
    }
    assert!(
        !parse_line("diagnose test")
            .unwrap()
            .unwrap()
            .changes_state()
    );
}

/// `diagnose` on every network of the shared zoo, both engines: every row's evidence holds its
/// numbers and every suggested command is a session line; the dynamically quantized text model
/// says why there is nothing to diagnose.
#[test]
fn diagnose_on_every_zoo_network_shows_evidence() {
    let Some(zoo) = crate::support::shared_zoo("diagnose on the zoo") else {
        return;
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(zoo.join("manifest.json")).unwrap()).unwrap();
    // The manifest's networks (its other keys, such as `_common`, are shared settings).
    let nets: Vec<String> = manifest
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| zoo.join(format!("{k}.onnx")).is_file())
        .cloned()
        .collect();
    assert!(nets.len() >= 3, "{nets:?}");
    for net in &nets {
        let text = net == "text";
        let engines: &[&str] = if text {
            &["fbgemm"]
        } else {
            &["fbgemm", "qnnpack"]
        };
        for engine in engines {
            let mut wb = Workbench::new();
            wb.set_base_dir(&zoo);
            let mut apply = |line: &str| {
                wb.apply(&parse_line(line).unwrap().unwrap())
                    .unwrap_or_else(|e| panic!("{net} {engine} {line}: {e}"))
            };
            let (calib, test) = if text {
                ("text_calib.npy", "text_test.npy")
            } else {
                ("calib.npy", "test.npy")
            };
            apply(&format!("load model {net}.onnx"));
            apply(&format!("load data calib {calib}"));
            apply(&format!("load data test {test}"));
            apply(&format!("engine {engine}"));
            if text {
                apply("quantize dynamic");
                let said = apply("diagnose test").to_string();
                assert!(said.contains("nothing to diagnose"), "{said}");
                continue;
            }
            apply("quantize calib batch=4");
            let rows = table(apply("diagnose test top=5"));
            assert!(!rows.is_empty(), "{net} {engine}");
            for r in &rows {
                assert!(
                    r[4].chars().any(|c| c.is_ascii_digit()),
                    "{net} {engine}: no evidence number: {r:?}"
                );
                assert!(r[5] == "-" || parse_line(&r[5]).is_ok(), "{r:?}");
            }
            crate::support::note(format!(
                "diagnose {net} {engine}: {} finding(s) on the 5 worst layers: {}",
                rows.len(),
                rows.iter()
                    .map(|r| format!("{} {} (drop {} dB)", r[0], r[3], r[2]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
}

//! Every script in `sessions/` replays, replays are byte-for-byte deterministic, a saved session
//! replays to the same outputs, and bad lines fail with their line number.

use crate::support::{root, shared_zoo};
use qlab::session::{SessionError, Workbench, parse_line, replay_script};
use std::path::Path;

/// Replays from the repository root (scripts use repo-relative paths) and returns the transcript.
fn transcript(script: &str) -> Result<String, String> {
    transcript_in(script, root())
}

/// [`transcript`] of a script whose relative paths are relative to `dir`, as `qlab run` replays
/// a script file.
fn transcript_in(script: &str, dir: &Path) -> Result<String, String> {
    std::env::set_current_dir(root()).unwrap();
    let mut wb = Workbench::new();
    wb.set_base_dir(dir);
    let mut out = String::new();
    replay_script(script, &mut wb, |cmd, o| {
        out.push_str(&format!("> {cmd}\n{o}"))
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn bundled_sessions_replay_deterministically() {
    let mut scripts: Vec<_> = std::fs::read_dir(root().join("sessions"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "qls"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty(), "sessions/ holds no .qls scripts");
    for path in scripts {
        let text = std::fs::read_to_string(&path).unwrap();
        // The zoo sessions read the shared zoo beside the checkout, absent from a clone.
        let name = format!("session {}", path.display());
        if text.contains("../../shared/") && shared_zoo(&name).is_none() {
            continue;
        }
        let dir = root().join("sessions");
        let first =
            transcript_in(&text, &dir).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let second = transcript_in(&text, &dir).unwrap();
        assert_eq!(first, second, "{} replays differently", path.display());
        println!("replayed {}", path.display());
    }
}

#[test]
fn saved_session_replays_to_the_same_outputs() {
    std::env::set_current_dir(root()).unwrap();
    let lines = [
        "load model sample-models/digits_mlp.onnx",
        "help",
        "load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy",
        "eval test",
    ];
    let mut wb = Workbench::new();
    let mut outputs = Vec::new();
    for line in lines {
        let cmd = parse_line(line).unwrap().unwrap();
        outputs.push(wb.apply(&cmd).unwrap().to_string());
    }
    let saved = wb.session_text();
    assert!(!saved.contains("help"), "help is not recorded");
    let mut again = Workbench::new();
    let mut replayed = Vec::new();
    replay_script(&saved, &mut again, |_, o| replayed.push(o.to_string())).unwrap();
    let recorded: Vec<String> = outputs
        .into_iter()
        .filter(|o| !o.starts_with("verbs"))
        .collect();
    assert_eq!(replayed, recorded);
}

#[test]
fn errors_name_the_line_and_keep_state() {
    std::env::set_current_dir(root()).unwrap();
    let script = "# comment\nload model sample-models/digits_mlp.onnx\n\neval nowhere\n";
    let mut wb = Workbench::new();
    let err = replay_script(script, &mut wb, |_, _| {}).unwrap_err();
    assert_eq!(err.line, 4);
    assert!(
        matches!(*err.error, SessionError::UnknownData { ref name, .. } if name == "nowhere"),
        "{err}"
    );
    assert!(
        wb.graph().is_some(),
        "the model loaded before the failing line is kept"
    );

    let mut fresh = Workbench::new();
    let err = replay_script("eval test", &mut fresh, |_, _| {}).unwrap_err();
    assert!(
        matches!(*err.error, SessionError::UnknownData { .. }),
        "{err}"
    );
    let err = replay_script(
        "load data x sample-models/data/missing.npy",
        &mut fresh,
        |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing.npy"), "{err}");
    let err = replay_script("load model sample-models/digits_cnn.onnx\nload data bad sample-models/data/digits_test_y.npy", &mut fresh, |_, _| {}).unwrap_err();
    assert_eq!(err.line, 2);
    assert!(
        err.to_string().contains("does not fit model input"),
        "{err}"
    );
}

/// Piped input runs line by line: outputs in order, errors reported with their input line,
/// and the failing line does not stop the rest.
#[test]
fn piped_repl_input_runs_every_line() {
    std::env::set_current_dir(root()).unwrap();
    let input = "load model sample-models/digits_mlp.onnx\nfrobnicate\nhelp eval\n";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let failed = qlab::repl::run_piped(&mut Workbench::new(), input.as_bytes(), &mut out, &mut err);
    assert_eq!(failed, 1);
    let (out, err) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    );
    assert!(
        out.contains("loaded sample-models/digits_mlp.onnx") && out.contains("eval DATA"),
        "{out}"
    );
    assert!(
        err.contains("unknown verb 'frobnicate'") && err.contains("input line 2"),
        "{err}"
    );
}

/// Outputs are reused between commands on the same data, but never across a reloaded model or
/// a dataset replaced under the same name.
#[test]
fn cached_outputs_follow_model_and_data_reloads() {
    std::env::set_current_dir(root()).unwrap();
    let script = "load model sample-models/digits_cnn.onnx\n\
                  load data d sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy\n\
                  eval d\n\
                  load data d sample-models/data/digits_calib_x.npy labels=sample-models/data/digits_calib_y.npy\n\
                  eval d\n\
                  load model sample-models/digits_mlp.onnx\n\
                  eval d\n";
    let mut outs = Vec::new();
    replay_script(script, &mut Workbench::new(), |_, o| {
        outs.push(o.to_string())
    })
    .unwrap();
    assert!(outs[2].contains("/397)"), "{}", outs[2]);
    assert!(outs[4].contains("/200)"), "{}", outs[4]);
    assert_ne!(
        outs[4], outs[6],
        "the MLP is evaluated, not the CNN's cached outputs"
    );
}

/// `expect sqnr` and `expect saturated` read one cached error table, which a state change
/// (here a new engine and convert) replaces; an unknown layer is a typed error naming it.
#[test]
fn layer_expectations_follow_state_changes_and_name_unknown_layers() {
    std::env::set_current_dir(root()).unwrap();
    let setup = "load model sample-models/digits_cnn.onnx\n\
                 load data calib sample-models/data/digits_calib_x.npy\n\
                 load data test sample-models/data/digits_test_x.npy\n\
                 qconfig * activation=histogram weight=\"per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)\"\n\
                 engine fbgemm profile=avx2\n\
                 quantize calib\n";
    let mut wb = Workbench::new();
    replay_script(setup, &mut wb, |_, _| {}).unwrap();
    let mut actual = |line: &str| -> String {
        let out = wb.apply(&parse_line(line).unwrap().unwrap()).unwrap();
        out.to_string()
    };
    let help = actual("help errors");
    assert!(
        help.contains("in_clip%") && help.contains("[(qmin−zp)·s, (qmax−zp)·s]"),
        "{help}"
    );
    assert!(actual("help expect").contains("saturated(DATA,LAYER)"));
    assert!(actual("expect saturated(test, conv1) > 0").contains("actual 69279"));
    assert!(actual("expect sqnr(test,conv1) < 15").contains("(actual 14.0"));
    actual("engine qnnpack");
    actual("convert");
    assert!(actual("expect saturated(test) == 0").contains("actual 0"));
    assert!(actual("expect sqnr(test,conv1) > 40").contains("(actual 41.9"));
    let err = wb
        .apply(
            &parse_line("expect saturated(test,features.0) == 0")
                .unwrap()
                .unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(err, SessionError::UnknownLayer { ref layer, .. } if layer == "features.0"),
        "{err}"
    );
    assert!(
        err.to_string().contains("conv1"),
        "the known layers are listed: {err}"
    );
}

/// `plot ... out=FILE.png` writes a PNG (by extension); another extension is refused on its
/// line, naming it, and nothing is written.
#[test]
fn plots_are_png_by_extension_and_other_extensions_are_refused() {
    std::env::set_current_dir(root()).unwrap();
    let dir = root().join("target/test-plots");
    let _ = std::fs::remove_dir_all(&dir);
    let script = "load model sample-models/digits_cnn.onnx\n\
                  load data calib sample-models/data/digits_calib_x.npy\n\
                  quantize calib\n\
                  plot errors calib out=target/test-plots/errors.png\n\
                  plot histogram conv1 out=target/test-plots/conv1.gif\n";
    let err = replay_script(script, &mut Workbench::new(), |_, _| {}).unwrap_err();
    assert_eq!(err.line, 5);
    assert!(err.to_string().contains("'gif'"), "{err}");
    assert!(!dir.join("conv1.gif").exists());
    let png = std::fs::read(dir.join("errors.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    // 900 wide; 160 px plus 22 per layer (nine rows) high.
    assert_eq!((w, h), (900, 160 + 22 * 9));
}

#[test]
fn compare_engines_adds_latency_only_when_asked() {
    let base = "load model sample-models/digits_cnn.onnx\n\
                load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy\n\
                load data calib sample-models/data/digits_calib_x.npy\n\
                quantize calib\n";
    let plain = transcript(&format!("{base}compare engines fbgemm qnnpack test\n")).unwrap();
    assert!(!plain.contains("latency"), "{plain}");
    let timed = transcript(&format!(
        "{base}compare engines fbgemm qnnpack test timing=on\n"
    ))
    .unwrap();
    let table = timed.split("> compare engines").nth(1).unwrap();
    assert!(
        table.contains("latency (batch 1, 1 thread, median of 20): fp32 "),
        "{table}"
    );
    // After the split: the rest of the command line, the title, the header, the rows.
    let header = table.lines().nth(2).unwrap();
    assert!(
        header.ends_with("fp32_ms  fbgemm_ms  qnnpack_ms"),
        "{header}"
    );
    // Every compared layer has positive times for both engines (fp32 may be '-' for quant).
    for line in table.lines().skip(3) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        for ms in &cells[cells.len() - 2..] {
            assert!(ms.parse::<f64>().unwrap() > 0.0, "{line}");
        }
    }
    // The integers compared are the same with or without timing.
    let columns = |t: &str| -> Vec<String> {
        t.lines()
            .skip(3)
            .map(|l| l.split_whitespace().take(6).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let plain_table = plain.split("> compare engines").nth(1).unwrap();
    assert_eq!(columns(table), columns(plain_table));
}

/// Applies `line` to `wb` and returns its rendered output.
fn apply(wb: &mut Workbench, line: &str) -> Result<String, SessionError> {
    wb.apply(&parse_line(line).unwrap().unwrap())
        .map(|o| o.to_string())
}

/// Row-wise argmax of a `[N, C]` .npy of f32 logits.
fn argmax_rows(path: &Path) -> Vec<usize> {
    let qlab::graph::Value::F32(y) = qlab::import::npy::read_npy(path).unwrap() else {
        panic!("{}: predict writes f32", path.display());
    };
    y.outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect()
}

/// `predict ... model=quantized` writes the converted model's dequantized outputs: their
/// argmax accuracy is `eval`'s quantized accuracy, and they are not the float outputs.
#[test]
fn predict_writes_the_quantized_model_on_request() {
    std::env::set_current_dir(root()).unwrap();
    let dir = root().join("target/test-predict");
    let _ = std::fs::remove_dir_all(&dir);
    let mut wb = Workbench::new();
    for line in [
        "load model sample-models/digits_cnn.onnx",
        "load data calib sample-models/data/digits_calib_x.npy",
        "load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy",
    ] {
        apply(&mut wb, line).unwrap();
    }
    let err = apply(
        &mut wb,
        "predict test out=target/test-predict/q.npy model=quantized",
    )
    .unwrap_err();
    assert!(matches!(err, SessionError::NotConverted), "{err}");
    assert!(!dir.join("q.npy").exists());
    apply(&mut wb, "quantize calib").unwrap();
    let out = apply(
        &mut wb,
        "predict test out=target/test-predict/q.npy model=quantized",
    )
    .unwrap();
    assert!(out.contains("quantized (fbgemm) outputs"), "{out}");
    apply(&mut wb, "predict test out=target/test-predict/f.npy").unwrap();
    let labels =
        match qlab::import::npy::read_npy(&root().join("sample-models/data/digits_test_y.npy"))
            .unwrap()
        {
            qlab::graph::Value::I64(y) => y.iter().map(|&l| l as usize).collect::<Vec<_>>(),
            other => panic!("labels are int64, got {}", other.dtype_name()),
        };
    let correct = |pred: &[usize]| pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let (q, f) = (
        argmax_rows(&dir.join("q.npy")),
        argmax_rows(&dir.join("f.npy")),
    );
    // The workbench's own count must equal the file's, for the quantized and the float model.
    apply(
        &mut wb,
        &format!("expect quantized_correct(test) == {}", correct(&q)),
    )
    .unwrap();
    apply(&mut wb, &format!("expect correct(test) == {}", correct(&f))).unwrap();
    let eval = apply(&mut wb, "eval test").unwrap();
    assert!(
        eval.contains(&format!("({}/{})", correct(&q), labels.len())),
        "{eval}"
    );
    let bytes = |name: &str| std::fs::read(dir.join(name)).unwrap();
    assert_ne!(
        bytes("q.npy"),
        bytes("f.npy"),
        "quantized outputs differ from float"
    );
    // Recorded in canonical form: the default is left out, the choice kept.
    let text = wb.session_text();
    assert!(text.contains("predict test out=target/test-predict/q.npy model=quantized\n"));
    assert!(text.contains("predict test out=target/test-predict/f.npy\n"));
}

/// The digits CNN saved with its batch pinned to `b` (as an export with the batch baked in).
fn pinned_cnn(b: usize) -> String {
    let mut g =
        qlab::import::onnx::load_onnx(&root().join("sample-models/digits_cnn.onnx")).unwrap();
    g.inputs[0].shape[0] = Some(b);
    let dir = root().join(format!("target/test-pinned/cnn_b{b}.qlab"));
    let _ = std::fs::remove_dir_all(&dir);
    qlab::import::native::save_native(&g, &dir).unwrap();
    dir.display().to_string()
}

/// A model that pins batch 1 runs every command in runs of 1 (said once per command), and gives
/// the float model's results the free-batch model gives.
#[test]
fn a_pinned_batch_runs_in_runs_of_that_batch() {
    std::env::set_current_dir(root()).unwrap();
    let data = "load data calib sample-models/data/digits_calib_x.npy\n\
                load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy\n";
    let free = transcript(&format!(
        "load model sample-models/digits_cnn.onnx\n{data}eval test\n"
    ))
    .unwrap();
    let pinned = pinned_cnn(1);
    let mut wb = Workbench::new();
    apply(&mut wb, &format!("load model \"{pinned}\"")).unwrap();
    for line in data.lines() {
        apply(&mut wb, line).unwrap();
    }
    let note = format!(
        "model input '{}' pins batch 1",
        wb.graph().unwrap().inputs[0].name
    );
    let eval = apply(&mut wb, "eval test").unwrap();
    assert_eq!(eval.matches(&note).count(), 1, "{eval}");
    assert!(eval.contains("running test in runs of 1"), "{eval}");
    let float_line = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("float accuracy"))
            .unwrap()
            .to_string()
    };
    assert_eq!(float_line(&eval), float_line(&free));
    let q = apply(&mut wb, "quantize calib").unwrap();
    assert!(
        q.contains(&format!("{note}: running batches of 32 as runs of 1")),
        "{q}"
    );
    // Float and quantized on the same data: one note.
    let eval = apply(&mut wb, "eval test").unwrap();
    assert!(eval.contains("quantized (fbgemm) accuracy"), "{eval}");
    for line in [
        "errors test",
        "compare engines fbgemm qnnpack test",
        "sensitivity test calib=calib batches=1",
        "calibrate calib batch=8 batches=2",
    ] {
        let out = apply(&mut wb, line).unwrap();
        assert_eq!(out.matches(&note).count(), 1, "{line}: {out}");
    }
    let out = apply(&mut wb, "calibrate calib batch=8 batches=2").unwrap();
    assert!(out.contains("2 batch(es), 16 samples"), "{out}");
    // Cached outputs run nothing, so nothing is said.
    let out = apply(&mut wb, "predict test out=target/test-pinned/p.npy").unwrap();
    assert!(!out.contains("pins batch"), "{out}");
}

/// A pinned batch of 4: 397 samples leave a last run of 1 (refused at load, naming it), and a
/// calibration batch that is not a multiple of 4 is refused.
#[test]
fn a_pinned_batch_refuses_partial_runs() {
    std::env::set_current_dir(root()).unwrap();
    let pinned = pinned_cnn(4);
    let mut wb = Workbench::new();
    apply(&mut wb, &format!("load model \"{pinned}\"")).unwrap();
    let err = apply(
        &mut wb,
        "load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pins batch 4") && err.contains("397 samples leave a last run of 1"),
        "{err}"
    );
    apply(
        &mut wb,
        "load data calib sample-models/data/digits_calib_x.npy",
    )
    .unwrap();
    let err = apply(&mut wb, "quantize calib batch=6")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch=6") && err.contains("multiple of 4"),
        "{err}"
    );
    let out = apply(&mut wb, "quantize calib").unwrap();
    assert!(
        out.contains("pins batch 4: running batches of 32 as runs of 4"),
        "{out}"
    );
}

/// Writes an int64 `[rows, cols]` array (`[len]` when `cols` is 0) as a version-1 `.npy` file.
fn write_npy_i64(path: &Path, cols: usize, values: &[i64]) {
    let shape = match values.len().checked_div(cols) {
        Some(rows) => format!("({rows}, {cols})"),
        None => format!("({},)", values.len()),
    };
    let mut header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// A token classifier: ids `[N, 3]` → 10×4 embedding (Gather) → flatten → Linear(12 → 2),
/// saved natively under `dir`.
fn embedding_model(dir: &Path) -> String {
    use ndarray::{Array1, Array2, ArrayD, IxDyn};
    use qlab::graph::{Graph, GraphInput, LinearParams, Node, Op, Value};
    let node = |name: &str, op: Op, inputs: &[&str], output: &str| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    };
    let mut g = Graph {
        inputs: vec![GraphInput {
            name: "ids".into(),
            shape: vec![None, Some(3)],
        }],
        outputs: vec!["logits".into()],
        ..Graph::default()
    };
    g.constants.insert(
        "embed.weight".into(),
        Value::F32(ArrayD::from_shape_fn(IxDyn(&[10, 4]), |i| {
            (i[0] as f32 - 4.5) * 0.3 + i[1] as f32 * 0.1
        })),
    );
    g.nodes = vec![
        node(
            "embed",
            Op::Gather { axis: 0 },
            &["embed.weight", "ids"],
            "e",
        ),
        node("flatten", Op::Flatten { axis: 1 }, &["e"], "f"),
        node(
            "head",
            Op::Linear(LinearParams::new(
                Array2::from_shape_fn((2, 12), |(o, i)| {
                    (if o == 0 { 0.5 } else { -0.5 }) * (1.0 + i as f32 * 0.01)
                }),
                Some(Array1::zeros(2)),
            )),
            &["f"],
            "logits",
        ),
    ];
    let path = dir.join("embed.qlab");
    let _ = std::fs::remove_dir_all(&path);
    qlab::import::native::save_native(&g, &path).unwrap();
    path.display().to_string()
}

/// int64 token ids load as ids (not floats), run through the embedding in the float and the
/// dynamically quantized model, and an id outside the table is refused naming its sample and
/// position.
#[test]
fn token_ids_feed_an_embedding_and_are_checked_against_it() {
    std::env::set_current_dir(root()).unwrap();
    let dir = root().join("target/test-ids");
    std::fs::create_dir_all(&dir).unwrap();
    let model = embedding_model(&dir);
    // Samples of high ids are class 0, low ids class 1 (the head sums the embedding).
    write_npy_i64(&dir.join("x.npy"), 3, &[9, 8, 9, 0, 1, 0, 7, 9, 8, 1, 2, 0]);
    write_npy_i64(&dir.join("y.npy"), 0, &[0, 1, 0, 1]);
    write_npy_i64(&dir.join("bad.npy"), 3, &[9, 8, 9, 0, 1, 10]);
    let mut wb = Workbench::new();
    apply(&mut wb, &format!("load model \"{model}\"")).unwrap();
    let d = dir.display();
    let out = apply(
        &mut wb,
        &format!("load data ids {d}/x.npy labels={d}/y.npy"),
    )
    .unwrap();
    assert!(
        out.contains("4 samples of shape [3] (int64 ids), labelled"),
        "{out}"
    );
    let out = apply(&mut wb, "eval ids").unwrap();
    assert!(
        out.contains("float accuracy on ids: 1.000000 (4/4)"),
        "{out}"
    );
    apply(&mut wb, "quantize dynamic").unwrap();
    apply(
        &mut wb,
        &format!("predict ids out={d}/q.npy model=quantized"),
    )
    .unwrap();
    assert_eq!(argmax_rows(&dir.join("q.npy")), vec![0, 1, 0, 1]);
    let err = apply(&mut wb, &format!("load data bad {d}/bad.npy")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("id 10 in sample 1 at position [2]") && text.contains("ids 0..10"),
        "{text}"
    );
    assert_eq!(wb.dataset_names(), vec!["ids".to_string()]);
    // Ids have no gradient to follow: training on them is refused, naming the dataset.
    apply(&mut wb, "prepare qat").unwrap();
    let err = apply(&mut wb, "train ids").unwrap_err().to_string();
    assert!(
        err.contains("dataset 'ids' holds int64 inputs; train needs float inputs"),
        "{err}"
    );
}

/// A label that is not one of the model's classes is an error naming the dataset, the sample
/// and the class count — not a silently wrong accuracy; state is kept.
#[test]
fn labels_outside_the_models_classes_are_refused() {
    std::env::set_current_dir(root()).unwrap();
    let dir = root().join("target/test-labels");
    std::fs::create_dir_all(&dir).unwrap();
    let model = embedding_model(&dir);
    write_npy_i64(&dir.join("x.npy"), 3, &[9, 8, 9, 0, 1, 0, 7, 9, 8, 1, 2, 0]);
    write_npy_i64(&dir.join("y.npy"), 0, &[0, 1, 2, 1]);
    let mut wb = Workbench::new();
    apply(&mut wb, &format!("load model \"{model}\"")).unwrap();
    let d = dir.display();
    apply(
        &mut wb,
        &format!("load data ids {d}/x.npy labels={d}/y.npy"),
    )
    .unwrap();
    let err = apply(&mut wb, "eval ids").unwrap_err().to_string();
    assert!(
        err.contains("dataset 'ids': label 2 of sample 2 is not one of the model's 2 classes"),
        "{err}"
    );
    // Negative labels are refused at load, naming the labels file.
    write_npy_i64(&dir.join("neg.npy"), 0, &[0, 1, -1, 1]);
    let err = apply(
        &mut wb,
        &format!("load data ids {d}/x.npy labels={d}/neg.npy"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("neg.npy") && err.contains("label -1 of sample 2"),
        "{err}"
    );
}

/// Either half of a qconfig alone replaces that half of what the target has now (its own entry,
/// else what the module resolves to, else the global one); a target kept in float needs both.
#[test]
fn one_half_of_a_qconfig_keeps_the_other() {
    std::env::set_current_dir(root()).unwrap();
    let mut wb = Workbench::new();
    apply(&mut wb, "load model sample-models/digits_cnn.onnx").unwrap();
    let out = apply(&mut wb, "qconfig conv1 activation=entropy").unwrap();
    // fbgemm's default weight observer is kept.
    assert!(
        out.contains("activation=entropy weight=per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)"),
        "{out}"
    );
    let out = apply(
        &mut wb,
        "qconfig conv1 weight=\"minmax(dtype=qint8, qscheme=per_tensor_symmetric)\"",
    )
    .unwrap();
    assert!(
        out.contains("activation=entropy weight=minmax(dtype=qint8, qscheme=per_tensor_symmetric)"),
        "{out}"
    );
    apply(&mut wb, "qconfig fc none").unwrap();
    let err = apply(&mut wb, "qconfig fc activation=minmax")
        .unwrap_err()
        .to_string();
    assert!(err.contains("kept in float"), "{err}");
    let err = apply(&mut wb, "qconfig conv2 activation=per_channel_minmax")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("per-channel qschemes are only supported for weights"),
        "{err}"
    );
    // The saved session replays to the same qconfigs.
    let text = wb.session_text();
    assert!(
        text.contains("qconfig conv1 activation=entropy\n"),
        "{text}"
    );
    let mut again = Workbench::new();
    qlab::session::replay_script(&text, &mut again, |_, _| {}).unwrap();
    assert_eq!(again.session_text(), text);
    let prepared = |wb: &mut Workbench| {
        apply(wb, "prepare").unwrap();
        apply(wb, "show qparams").unwrap()
    };
    assert_eq!(prepared(&mut again), prepared(&mut wb));
}

/// Every report carries its context: qlab's version, the numerics, the model file by name and
/// content hash, each dataset's fingerprint, both accuracies and each layer's qconfig.
#[test]
fn reports_carry_model_data_and_accuracy_context() {
    use sha2::{Digest, Sha256};
    std::env::set_current_dir(root()).unwrap();
    let dir = root().join("target/reports-context");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("errors.json");
    let mut wb = Workbench::new();
    for line in [
        "load model sample-models/digits_cnn.onnx",
        "load data calib sample-models/data/digits_calib_x.npy",
        "load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy",
        "quantize calib",
    ] {
        apply(&mut wb, line).unwrap();
    }
    let eval = apply(&mut wb, "eval test").unwrap();
    apply(
        &mut wb,
        &format!("export errors test out={}", out.display()),
    )
    .unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 4);
    let c = &doc["context"];
    assert_eq!(c["qlab_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (c["engine"].as_str(), c["profile"].as_str()),
        (Some("fbgemm"), Some("vnni"))
    );
    assert!(c["isa"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(c["model_file"], "digits_cnn.onnx");
    let file = std::fs::read(root().join("sample-models/digits_cnn.onnx")).unwrap();
    let want: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(c["model_sha256"], want);
    let data = c["datasets"].as_array().unwrap();
    let names: Vec<&str> = data.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["calib", "test"]);
    assert_eq!(data[1]["samples"], 397);
    assert_ne!(data[0]["sha256"], data[1]["sha256"]);
    // The float accuracy is eval's; the quantized one is a rate too.
    let float = c["float_accuracy"].as_f64().unwrap();
    assert!(
        eval.contains(&format!("float accuracy on test: {float:.6}")),
        "{eval} vs {float}"
    );
    let quantized = c["quantized_accuracy"].as_f64().unwrap();
    assert!(
        eval.contains(&format!("accuracy on test: {quantized:.6}")),
        "{eval}"
    );
    assert!(
        c["qconfigs"]["conv1"]
            .as_str()
            .is_some_and(|q| q.contains("histogram")),
        "{c}"
    );
}

/// The table a command prints.
fn table(wb: &mut Workbench, line: &str) -> qlab::session::Table {
    match wb.apply(&parse_line(line).unwrap().unwrap()).unwrap() {
        qlab::session::Output::Table { table, .. } => table,
        other => panic!("{line}: not a table: {other:?}"),
    }
}

/// The column of `t` whose header starts with `name`.
fn column(t: &qlab::session::Table, name: &str) -> usize {
    t.headers
        .iter()
        .position(|h| h.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} column in {:?}", t.headers))
}

/// `export KIND ... out=F.json` in a directory of its own under `target/`, parsed.
fn export_json(wb: &mut Workbench, dir: &Path, line: &str, file: &str) -> serde_json::Value {
    let out = dir.join(file);
    apply(wb, &format!("{line} out={}", out.display())).unwrap();
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

/// The digits CNN with its calibration and (labelled) test data, after `steps`.
fn digits_after(steps: &[&str]) -> Workbench {
    std::env::set_current_dir(root()).unwrap();
    let mut wb = Workbench::new();
    for line in [
        "load model sample-models/digits_cnn.onnx",
        "load data calib sample-models/data/digits_calib_x.npy",
        "load data test sample-models/data/digits_test_x.npy labels=sample-models/data/digits_test_y.npy",
    ]
    .iter()
    .chain(steps)
    {
        apply(&mut wb, line).unwrap();
    }
    wb
}

/// The digits CNN quantized with fbgemm's default qconfig (histogram observers).
fn quantized_digits() -> Workbench {
    digits_after(&["quantize calib"])
}

/// What `print` prints and what `export` writes to `dir/FILE.json`: the table, the JSON
/// document and its rows, after checking the document's head and that it has as many rows as
/// the table (at least one).
fn printed_and_exported(
    wb: &mut Workbench,
    dir: &Path,
    print: &str,
    export: &str,
) -> (
    qlab::session::Table,
    serde_json::Value,
    Vec<serde_json::Value>,
) {
    let printed = table(wb, print);
    let kind = export.split_whitespace().nth(1).unwrap();
    let doc = export_json(wb, dir, export, &format!("{kind}.json"));
    assert_eq!(doc["kind"], kind);
    assert_eq!(doc["schema_version"], qlab::report::SCHEMA_VERSION);
    assert_eq!(doc["schema_version"], 4);
    assert_eq!(doc["context"]["model_file"], "digits_cnn.onnx");
    assert_eq!(doc["context"]["engine"], "fbgemm");
    let rows = doc["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), printed.rows.len(), "{export}");
    assert!(!rows.is_empty(), "{export}");
    (printed, doc, rows)
}

/// Every report kind in JSON holds `kind`, the schema version, the context and the rows the
/// corresponding verb prints, in its order and agreeing with its numbers.
#[test]
fn exported_reports_hold_what_the_verbs_print() {
    let mut wb = quantized_digits();
    let dir = root().join("target/reports-kinds");

    // errors: one row per layer `errors test` lists, same SQNR.
    let (printed, doc, rows) =
        printed_and_exported(&mut wb, &dir, "errors test", "export errors test");
    assert!(rows.len() >= 5, "{rows:?}");
    let (layer, sqnr) = (column(&printed, "layer"), column(&printed, "sqnr"));
    for p in &printed.rows {
        let r = rows
            .iter()
            .find(|r| r["layer"] == p[layer].as_str())
            .unwrap();
        assert_eq!(format!("{:.2}", r["sqnr_db"].as_f64().unwrap()), p[sqnr]);
    }
    assert!(doc["context"]["quantized_accuracy"].as_f64().unwrap() > 0.9);

    // weights: `errors weights`' rows, worst first.
    let (printed, doc, rows) =
        printed_and_exported(&mut wb, &dir, "errors weights", "export weights");
    assert_eq!(
        rows.len(),
        4,
        "the digits CNN has three convs and one linear"
    );
    let (sqnr, cosine) = (column(&printed, "sqnr"), column(&printed, "cosine"));
    for (r, p) in rows.iter().zip(&printed.rows) {
        assert_eq!(r["layer"], p[0].as_str());
        assert_eq!(format!("{:.2}", r["sqnr_db"].as_f64().unwrap()), p[sqnr]);
        assert_eq!(format!("{:.6}", r["cosine"].as_f64().unwrap()), p[cosine]);
    }
    assert!(doc["weight"].as_str().unwrap().contains("per_channel"));

    // compare: `compare engines`' rows in graph order, with each engine's accuracy.
    let (printed, doc, rows) = printed_and_exported(
        &mut wb,
        &dir,
        "compare engines fbgemm qnnpack test",
        "export compare fbgemm qnnpack test",
    );
    let (differ, lsb) = (column(&printed, "differ"), column(&printed, "max_lsb"));
    for (r, p) in rows.iter().zip(&printed.rows) {
        assert_eq!(r["layer"], p[0].as_str());
        assert_eq!(r["differing"].to_string(), p[differ]);
        assert_eq!(r["max_lsb"].to_string(), p[lsb]);
    }
    assert_eq!(
        (doc["a"].as_str(), doc["b"].as_str()),
        (Some("fbgemm"), Some("qnnpack"))
    );
    assert!(doc["a_accuracy"].as_f64().unwrap() > 0.9);

    // sensitivity: the ranking `sensitivity` prints, largest recovery first.
    let (printed, doc, rows) = printed_and_exported(
        &mut wb,
        &dir,
        "sensitivity test calib=calib batches=2",
        "export sensitivity test calib=calib batches=2",
    );
    for (r, p) in rows.iter().zip(&printed.rows) {
        assert_eq!(r["layer"], p[0].as_str());
        assert_eq!(format!("{:.6}", r["only_this"].as_f64().unwrap()), p[1]);
        assert_eq!(format!("{:.6}", r["all_but_this"].as_f64().unwrap()), p[2]);
        assert_eq!(format!("{:+.6}", r["recovered"].as_f64().unwrap()), p[3]);
    }
    assert_eq!(doc["metric"], "accuracy");
    assert_eq!(doc["calib_batches"], 2);
}

/// Every kind renders as CSV (the keys as header, one line per row), Markdown and HTML, and a
/// second export of the same state writes the same bytes.
#[test]
fn every_report_kind_renders_in_every_format_deterministically() {
    let mut wb = quantized_digits();
    let dir = root().join("target/reports-formats");
    for (line, header, rows) in [
        (
            "export weights",
            "layer,op,shape,sqnr_db,mse,max_abs,cosine,rmse_over_scale",
            4,
        ),
        (
            "export compare fbgemm qnnpack test",
            "layer,op,outputs,differing,differ_rate,max_lsb",
            0,
        ),
        (
            "export errors test",
            "layer,op,sqnr_db,mse,max_abs,mean_error,cosine,rmse_over_scale,clip_rate,input_clip_rate,saturated_pairs",
            0,
        ),
        (
            "export qparams data=test",
            "layer,op,observer,batches,dtype,qscheme,scale,zero_point,quant_min,quant_max,observed_min,observed_max,clip_rate,weight_dtype,weight_qscheme,weight_scale,weight_zero_point,weight_ch_axis,weight_quant_min,weight_quant_max",
            0,
        ),
    ] {
        let kind = line.split_whitespace().nth(1).unwrap();
        for ext in ["csv", "md", "html", "json"] {
            let out = dir.join(format!("{kind}.{ext}"));
            let cmd = format!("{line} out={}", out.display());
            apply(&mut wb, &cmd).unwrap();
            let first = std::fs::read(&out).unwrap();
            apply(&mut wb, &cmd).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), first, "{cmd}");
            let text = String::from_utf8(first).unwrap();
            match ext {
                "csv" => {
                    assert_eq!(text.lines().next(), Some(header), "{cmd}");
                    if rows > 0 {
                        assert_eq!(text.lines().count(), rows + 1, "{cmd}");
                    }
                }
                "md" => assert!(
                    text.starts_with("# ")
                        && text.contains(&format!("| {} |", header.replace(',', " | "))),
                    "{text}"
                ),
                "html" => assert!(
                    text.starts_with("<!DOCTYPE html>")
                        && text.contains("sha256")
                        && text.contains("<table>")
                        && !text.contains("<script"),
                    "{cmd}"
                ),
                _ => {}
            }
        }
    }
}

/// The HTML error report shows the observer histograms of the three lowest-SQNR layers, and
/// says why when a worst layer's observer keeps none or the model has no observers.
#[test]
fn html_error_report_shows_the_worst_layers_histograms() {
    let mut wb = quantized_digits();
    let dir = root().join("target/reports-histograms");
    let printed = table(&mut wb, "errors test");
    let out = dir.join("errors.html");
    apply(
        &mut wb,
        &format!("export errors test out={}", out.display()),
    )
    .unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("Observer histograms of the worst layers"),
        "{html}"
    );
    // The SQNR chart, then one histogram per worst layer that has a histogram observer.
    let figures = html.matches("<svg").count();
    assert_eq!(figures, 1 + 3, "{figures} svg elements");
    // `errors` prints worst first: the first layer with a figure is the worst one observed.
    let headings: Vec<&str> = html
        .split("<h3>")
        .skip(1)
        .map(|h| h.split(' ').next().unwrap())
        .collect();
    assert!(headings.len() >= 3, "{headings:?}");
    let layer = column(&printed, "layer");
    let worst: Vec<&str> = printed.rows.iter().map(|r| r[layer].as_str()).collect();
    assert_eq!(
        headings,
        worst[..headings.len()],
        "{headings:?} vs {worst:?}"
    );
    assert!(
        html.contains("histogram(") || html.contains("Histogram"),
        "observer named"
    );

    // Calibrated with min/max observers, which keep no histogram: the page says so, and draws
    // only the chart. (Switching the qconfig after a histogram calibration would not do: the
    // observers keep the histograms they gathered.)
    let mut wb = digits_after(&[
        "qconfig * activation=minmax(reduce_range=true) weight=\"per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)\"",
        "fuse auto",
        "prepare",
        "calibrate calib",
        "convert",
    ]);
    apply(
        &mut wb,
        &format!("export errors test out={}", out.display()),
    )
    .unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert_eq!(html.matches("<svg").count(), 1);
    assert!(html.contains("keeps no histogram"), "{html}");

    // A dynamically quantized model was never calibrated with observers.
    let mut wb = digits_after(&["quantize dynamic"]);
    let out = dir.join("dynamic.html");
    apply(
        &mut wb,
        &format!("export errors test out={}", out.display()),
    )
    .unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("not calibrated with observers"), "{html}");
}

/// Bad output files are typed errors, and script paths are relative to the script.
#[test]
fn export_refuses_unknown_formats_and_unwritable_paths() {
    let mut wb = quantized_digits();
    let e = parse_line("export weights out=w.txt")
        .unwrap_err()
        .to_string();
    assert!(e.contains("'w.txt'") && e.contains(".json"), "{e}");
    let e = parse_line("export compare fbgemm test out=c.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("usage: export"), "{e}");
    // A command built as a value (as the TUI builds them) skips the parser's check.
    let cmd = qlab::session::Command::Export {
        what: qlab::session::Exported::Weights {
            weight: "per_channel_minmax".parse().unwrap(),
        },
        out: "w.txt".into(),
    };
    assert!(matches!(
        wb.apply(&cmd),
        Err(SessionError::UnknownFormat { .. })
    ));
    // The parent of the output is a file.
    let dir = root().join("target/reports-bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("file"), b"x").unwrap();
    let out = dir.join("file/w.json");
    let err = apply(&mut wb, &format!("export weights out={}", out.display())).unwrap_err();
    assert!(matches!(err, SessionError::Io { .. }), "{err}");

    // Relative out= paths resolve against the script's directory.
    let scripts = root().join("target/reports-script");
    let _ = std::fs::remove_file(scripts.join("w.json"));
    std::fs::create_dir_all(&scripts).unwrap();
    transcript_in(
        "load model ../../sample-models/digits_cnn.onnx\nexport weights out=w.json\n",
        &scripts,
    )
    .unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scripts.join("w.json")).unwrap()).unwrap();
    assert_eq!(doc["kind"], "weights");
    assert!(doc["context"]["float_accuracy"].is_null());
}

//! ONNX external data, dynamo-export module paths and the all-at-once unsupported-op report.
//!
//! External data is read from the model's folder only: every way a location can point elsewhere
//! (`..`, an absolute path, a symlink out of the folder) and every way offset and length can fail
//! to fit is a typed error naming the tensor. The zoo tests (skipped when `../shared/zoo` is
//! absent) check PyTorch 2.x's default exports load their weights and get the module paths of
//! their legacy twins.

use crate::support::{onnx, shared_zoo};

use prost::Message;
use qlab::graph::{LinearCall, Op, Value, run};
use qlab::import::ImportError;
use qlab::import::onnx::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    ValueInfoProto,
};
use qlab::import::onnx::{import_onnx_bytes, load_onnx, node_module_path};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const W: [f32; 12] = [
    0.5, -1.0, 2.0, 0.25, 1.5, -0.75, 3.0, -2.5, 0.125, 1.0, -0.5, 4.0,
];
const B: [f32; 3] = [0.1, -0.2, 0.3];

/// A fresh, empty folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("qlab-ext-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}

fn embedded(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        raw_data: Some(le_bytes(data)),
        ..Default::default()
    }
}

fn external(name: &str, dims: &[i64], entries: &[(&str, &str)]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        data_location: Some(1),
        external_data: entries.iter().map(|(k, v)| entry(k, v)).collect(),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn model_bytes(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, output: &str) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![onnx::input("x", &[2, 4])],
            output: vec![ValueInfoProto {
                name: Some(output.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `y = x·W + B` (a Linear named `fc`) with the given initializers for `W` and `B`.
fn linear_model(w: TensorProto, b: TensorProto) -> Vec<u8> {
    model_bytes(
        vec![
            node("/fc/MatMul", "MatMul", &["x", "W"], "h"),
            node("/fc/Add", "Add", &["h", "B"], "y"),
        ],
        vec![w, b],
        "y",
    )
}

/// `W` and `B` in one data file (`B` first, so `W` sits at an offset).
fn write_data(dir: &Path, file: &str) {
    let mut bytes = le_bytes(&B);
    bytes.extend(le_bytes(&W));
    std::fs::write(dir.join(file), bytes).unwrap();
}

fn forward(bytes: &[u8], folder: Option<&Path>) -> Result<Vec<f32>, ImportError> {
    let graph = match folder {
        Some(dir) => {
            let path = dir.join("m.onnx");
            std::fs::write(&path, bytes).unwrap();
            load_onnx(&path)?
        }
        None => import_onnx_bytes(bytes, "m.onnx")?,
    };
    let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.5 - 1.0).collect();
    let x = Value::F32(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 4]), x).unwrap());
    let out = run(&graph, vec![x], |_, _| {}).expect("runs");
    Ok(out[0].f32("y").unwrap().iter().copied().collect())
}

/// The external `W` of [`linear_model`] with the given entries; `B` stays embedded.
fn with_w_entries(entries: &[(&str, &str)]) -> Vec<u8> {
    linear_model(external("W", &[4, 3], entries), embedded("B", &[3], &B))
}

fn load_in(dir: &Path, bytes: &[u8]) -> ImportError {
    let path = dir.join("m.onnx");
    std::fs::write(&path, bytes).unwrap();
    load_onnx(&path).expect_err("must be refused")
}

/// `err` must be an external-data error naming tensor `W` whose detail mentions `why`.
fn assert_refused(err: ImportError, why: &str) {
    match &err {
        ImportError::ExternalData { tensor, detail, .. } => {
            assert_eq!(tensor, "W", "{err}");
            assert!(detail.contains(why), "expected '{why}' in: {err}");
        }
        other => panic!("expected an external-data error naming W ({why}), got {other}"),
    }
}

#[test]
fn external_data_gives_the_embedded_values() {
    let dir = TempDir::new("same");
    write_data(&dir.0, "weights.bin");
    let want = forward(
        &linear_model(embedded("W", &[4, 3], &W), embedded("B", &[3], &B)),
        None,
    )
    .unwrap();
    // Both tensors from one file: `B` without offset and length (the rest of the file would be
    // too long, so it states its length), `W` at an offset without a length (rest of file).
    let both = linear_model(
        external(
            "W",
            &[4, 3],
            &[("location", "weights.bin"), ("offset", "12")],
        ),
        external(
            "B",
            &[3],
            &[
                ("location", "weights.bin"),
                ("length", "12"),
                ("checksum", "ignored"),
            ],
        ),
    );
    assert_eq!(forward(&both, Some(&dir.0)).unwrap(), want);

    // A data file in a subfolder is inside the model's folder too.
    std::fs::create_dir_all(dir.0.join("sub")).unwrap();
    write_data(&dir.0.join("sub"), "w.data");
    let nested = with_w_entries(&[
        ("location", "sub/w.data"),
        ("offset", "12"),
        ("length", "48"),
    ]);
    assert_eq!(forward(&nested, Some(&dir.0)).unwrap(), want);

    // In memory the model has no folder: a typed error, not a read relative to the cwd.
    let err = forward(&nested, None).unwrap_err();
    assert_refused(err, "no folder");
}

#[test]
fn locations_outside_the_folder_are_refused() {
    let outer = TempDir::new("outside");
    let dir = outer.0.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    // A valid data file just outside the model's folder, and one inside it.
    write_data(&outer.0, "x.data");
    write_data(&dir, "in.data");
    let entries = |loc: &str| with_w_entries(&[("location", loc), ("offset", "12")]);

    assert_refused(load_in(&dir, &entries("../x.data")), "relative path");
    assert_refused(load_in(&dir, &entries("sub/../in.data")), "relative path");
    assert_refused(load_in(&dir, &entries("./in.data")), "relative path");
    // Absolute, even when it names the file inside the folder.
    let abs = dir.join("in.data");
    assert_refused(
        load_in(&dir, &entries(abs.to_str().unwrap())),
        "relative path",
    );
    assert_refused(load_in(&dir, &entries("")), "no `location`");
    assert_refused(load_in(&dir, &entries("missing.data")), "cannot open");
    assert_refused(load_in(&dir, &with_w_entries(&[])), "no `location`");

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outer.0.join("x.data"), dir.join("link.data")).unwrap();
        assert_refused(
            load_in(&dir, &entries("link.data")),
            "outside the model's folder",
        );
        std::os::unix::fs::symlink(&outer.0, dir.join("up")).unwrap();
        assert_refused(
            load_in(&dir, &entries("up/x.data")),
            "outside the model's folder",
        );
        // A symlink that stays inside the folder is fine.
        std::os::unix::fs::symlink(dir.join("in.data"), dir.join("alias.data")).unwrap();
        let path = dir.join("m.onnx");
        std::fs::write(&path, entries("alias.data")).unwrap();
        load_onnx(&path).expect("a symlink inside the folder is followed");
    }
}

#[test]
fn non_regular_files_are_refused_without_reading() {
    let dir = TempDir::new("special");
    std::fs::create_dir_all(dir.0.join("folder.data")).unwrap();
    let entries = |loc: &str| with_w_entries(&[("location", loc)]);
    assert_refused(
        load_in(&dir.0, &entries("folder.data")),
        "not a regular file",
    );
    #[cfg(unix)]
    {
        // Opening a FIFO for reading blocks until a writer comes: refused before that.
        let fifo = std::ffi::CString::new(dir.0.join("pipe.data").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_refused(load_in(&dir.0, &entries("pipe.data")), "not a regular file");
    }
}

#[test]
fn offset_and_length_must_fit_file_and_shape() {
    let dir = TempDir::new("bounds");
    write_data(&dir.0, "w.data"); // 60 bytes
    let load = |entries: &[(&str, &str)]| load_in(&dir.0, &with_w_entries(entries));
    let past_end = [
        &[("location", "w.data"), ("offset", "12"), ("length", "52")][..],
        &[("location", "w.data"), ("offset", "61")],
        &[
            ("location", "w.data"),
            ("offset", "18446744073709551615"),
            ("length", "2"),
        ],
    ];
    for entries in past_end {
        assert_refused(load(entries), "past the end of the file");
    }
    for bad_number in ["-4", "12.0", "lots", "99999999999999999999999"] {
        let err = load(&[("location", "w.data"), ("offset", bad_number)]);
        assert_refused(err, "not a byte count");
    }
    // In the file but not the tensor's size: 4×3 floats need 48 bytes.
    for entries in [
        &[("location", "w.data"), ("offset", "12"), ("length", "44")][..],
        &[("location", "w.data")], // the whole file: 60 bytes
    ] {
        match load(entries) {
            ImportError::BadTensor { name, detail } => {
                assert_eq!(name, "W");
                assert!(detail.contains("needs 48"), "{detail}");
            }
            other => panic!("{entries:?}: expected a size error naming W, got {other}"),
        }
    }
    // A huge shape is refused before anything its size is allocated.
    let huge = linear_model(
        external("W", &[1 << 40, 1 << 20], &[("location", "w.data")]),
        embedded("B", &[3], &B),
    );
    assert!(matches!(
        load_in(&dir.0, &huge),
        ImportError::BadTensor { ref name, .. } if name == "W"
    ));
}

#[test]
fn every_unsupported_op_type_is_reported_at_once() {
    let custom = NodeProto {
        domain: Some("com.example".into()),
        ..node("thing", "Thing", &["d"], "e")
    };
    let bytes = model_bytes(
        vec![
            node("frob", "Frobnicate", &["x"], "a"),
            node("/act/Relu", "Relu", &["a"], "b"),
            node("wib", "Wibble", &["b"], "c"),
            node("frob_again", "Frobnicate", &["c"], "d"),
            custom,
            // A weight only an unsupported op computes: not reported as "not a constant".
            node("make_w", "MakeWeight", &[], "w"),
            node("/fc/MatMul", "MatMul", &["e", "w"], "y"),
        ],
        vec![],
        "y",
    );
    let err = import_onnx_bytes(&bytes, "m.onnx").unwrap_err();
    let text = err.to_string();
    let ImportError::UnsupportedOps { ops } = err else {
        panic!("expected UnsupportedOps, got {text}");
    };
    let sites: Vec<(&str, &str)> = ops
        .iter()
        .map(|s| (s.op_type.as_str(), s.node.as_str()))
        .collect();
    assert_eq!(
        sites,
        [
            ("Frobnicate", "frob"),
            ("Wibble", "wib"),
            ("com.example::Thing", "thing"),
            ("MakeWeight", "make_w"),
        ]
    );
    assert!(text.starts_with("4 unsupported op types"), "{text}");
    assert!(text.contains("Wibble (first at node 'wib')"), "{text}");

    // Any other error still stops the import where it happens.
    let bytes = model_bytes(
        vec![
            node("frob", "Frobnicate", &["x"], "a"),
            node("wib", "Wibble", &["a"], "b"),
            node("/add/Add", "Add", &["b", "nowhere"], "y"),
        ],
        vec![],
        "y",
    );
    let err = import_onnx_bytes(&bytes, "m.onnx").unwrap_err();
    assert!(
        matches!(err, ImportError::MissingInput { ref input, .. } if input == "nowhere"),
        "{err}"
    );
}

/// A legacy export of a block holding an attention-like module, by hand: `attn` applies its
/// bare `in_proj_weight` (through a Transpose the importer folds) and its `out_proj`'s weight
/// functionally; `fc` and `fc2` are `nn.Linear` calls, `fc2`'s weight a repeated layer's copy
/// the exporter wrote as `Identity` of `fc`'s; constant folding renamed `blk`'s and `ff`'s
/// weights, so only their biases tell a functional call (`blk`) from a module call (`ff`).
#[test]
fn functional_linears_are_told_from_module_calls() {
    let w: Vec<f32> = (0..16).map(|i| W[i % 12] * 0.25).collect();
    let (b4, w4) = (&[0.1, -0.2, 0.3, 0.0][..], &[4, 4][..]);
    let inits = [
        "attn.in_proj_weight",
        "attn.out_proj.weight",
        "fc.weight",
        "onnx::MatMul_7",
        "onnx::MatMul_8",
    ]
    .iter()
    .map(|n| embedded(n, w4, &w))
    .chain(
        [
            "attn.in_proj_bias",
            "attn.out_proj.bias",
            "fc.bias",
            "blk.in_proj_bias",
            "ff.bias",
        ]
        .iter()
        .map(|n| embedded(n, &[4], b4)),
    )
    .collect();
    let nodes = vec![
        node("Identity_0", "Identity", &["fc.weight"], "fc2.weight"),
        node(
            "/attn/Transpose",
            "Transpose",
            &["attn.in_proj_weight"],
            "wt",
        ),
        node("/attn/MatMul", "MatMul", &["x", "wt"], "a0"),
        node("/attn/Add", "Add", &["attn.in_proj_bias", "a0"], "a1"),
        node(
            "/attn/Gemm",
            "Gemm",
            &["a1", "attn.out_proj.weight", "attn.out_proj.bias"],
            "a2",
        ),
        node("/fc/Gemm", "Gemm", &["a2", "fc.weight", "fc.bias"], "f"),
        node("/fc2/Gemm", "Gemm", &["f", "fc2.weight"], "f2"),
        node("/blk/MatMul", "MatMul", &["f2", "onnx::MatMul_7"], "b0"),
        node("/blk/Add", "Add", &["blk.in_proj_bias", "b0"], "b1"),
        node("/ff/MatMul", "MatMul", &["b1", "onnx::MatMul_8"], "g0"),
        node("/ff/Add", "Add", &["ff.bias", "g0"], "y"),
    ];
    let graph = import_onnx_bytes(&model_bytes(nodes, inits, "y"), "block").unwrap();
    let calls: Vec<(&str, LinearCall)> = graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Linear(l) => Some((n.name.as_str(), l.call)),
            _ => None,
        })
        .collect();
    use LinearCall::{Functional, Module};
    assert_eq!(
        calls,
        [
            ("attn", Functional),
            ("attn.out_proj", Functional),
            ("fc", Module),
            ("fc2", Module),
            ("blk", Functional),
            ("ff", Module),
        ]
    );
}

#[test]
fn dynamo_exports_load_their_external_weights() {
    let Some(zoo) = shared_zoo("dynamo_exports_load_their_external_weights") else {
        return;
    };
    for name in ["text", "shufflenet_v2_x0_5", "mobilenet_v3_large"] {
        let path = zoo.join(format!("{name}.dynamo.onnx"));
        let start = std::time::Instant::now();
        let result = load_onnx(&path);
        println!("{name}: {:?}", start.elapsed());
        match result {
            Ok(graph) => assert!(!graph.nodes.is_empty()),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

/// Per op type, the set of module paths its nodes get (`None` for root-level nodes), by the
/// importer's rule for either exporter.
fn paths_by_op(path: &Path) -> BTreeMap<String, BTreeSet<Option<String>>> {
    let bytes = std::fs::read(path).unwrap();
    let model = ModelProto::decode(bytes.as_slice()).unwrap();
    let mut out: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
    for n in &model.graph.unwrap().node {
        let name = n.name.clone().unwrap_or_default();
        let scope = node_module_path(n, &name);
        out.entry(n.op_type.clone().unwrap_or_default())
            .or_default()
            .insert(scope);
    }
    out
}

#[test]
fn dynamo_nodes_get_their_legacy_twins_module_paths() {
    let Some(zoo) = shared_zoo("dynamo_nodes_get_their_legacy_twins_module_paths") else {
        return;
    };
    let cases: [(&str, &[&str]); 3] = [
        ("shufflenet_v2_x0_5", &["Conv", "Gemm", "Relu", "MaxPool"]),
        (
            "mobilenet_v3_large",
            &[
                "Conv",
                "Gemm",
                "HardSwish",
                "HardSigmoid",
                "Relu",
                "Add",
                "Mul",
            ],
        ),
        (
            "text",
            &["MatMul", "Gemm", "LayerNormalization", "Gather", "Softmax"],
        ),
    ];
    for (name, same) in cases {
        let legacy = paths_by_op(&zoo.join(format!("{name}.onnx")));
        let dynamo = paths_by_op(&zoo.join(format!("{name}.dynamo.onnx")));
        for op in same {
            assert_eq!(
                dynamo.get(*op),
                legacy.get(*op),
                "{name}: {op} module paths"
            );
        }
        // Every op type both exports use lands only in scopes the legacy export knows.
        for (op, paths) in &dynamo {
            if let Some(known) = legacy.get(op) {
                let extra: Vec<_> = paths.difference(known).collect();
                assert!(extra.is_empty(), "{name}: {op} in {extra:?}");
            }
        }
    }
    let convs = &paths_by_op(&zoo.join("mobilenet_v3_large.dynamo.onnx"))["Conv"];
    assert!(convs.contains(&Some("features.0.0".into())), "{convs:?}");
    assert!(convs.contains(&Some("features.16.0".into())), "{convs:?}");
}

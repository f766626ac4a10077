#![no_main]
//! Structure-aware fuzzing of the native format: start from real saved models (the digits CNN
//! fused, with its fusions; the LSTM; the parity network; the text model) and mutate
//! `graph.json` where a hand edit or a broken tool would — any value replaced by an edge number,
//! a string, an empty list or null, keys removed, list entries duplicated or dropped — and
//! `weights.safetensors`' bytes. Loading must give a typed error or a model that runs float and
//! int8 ([`qlab_fuzz::exercise`]). Each seed that converts is also seeded converted (schema
//! version 2, with its quantized section and int8 tensors), and a converted model that loads
//! must run ([`qlab_fuzz::exercise_quantized`]).

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use qlab::import::native::{decode_native_model, encode_native, encode_native_model};
use qlab::import::onnx::import_onnx_bytes_in;
use serde_json::{Value as Json, json};
use std::sync::OnceLock;

const SEEDS: &[&[u8]] = &[
    include_bytes!("../../sample-models/digits_cnn.onnx"),
    include_bytes!("../../sample-models/digits_lstm.onnx"),
    include_bytes!("../../tests/fixtures/parity/net.onnx"),
    include_bytes!("../../tests/fixtures/zoo/text.dynamo.onnx"),
];

/// Where the text model's external weights are.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/zoo");

/// Each seed fused (so fusions are present) and encoded, then each that converts encoded with
/// its converted model: (graph.json as JSON, weights).
fn seeds() -> &'static [(Json, Vec<u8>)] {
    static S: OnceLock<Vec<(Json, Vec<u8>)>> = OnceLock::new();
    S.get_or_init(|| {
        let json = |text: String| serde_json::from_str(&text).expect("seed json");
        let graphs: Vec<_> = SEEDS
            .iter()
            .map(|bytes| {
                import_onnx_bytes_in(bytes, "seed.onnx", FIXTURES.as_ref()).expect("seeds import")
            })
            .collect();
        let float = graphs.iter().map(|graph| {
            let fused = qlab::workflow::fuse_auto(graph).map_or_else(|_| graph.clone(), |(g, _)| g);
            let (text, weights) = encode_native(&fused, "seed").expect("seeds encode");
            (json(text), weights)
        });
        let converted = graphs
            .iter()
            .filter_map(qlab_fuzz::converted)
            .map(|(fused, model)| {
                let qconfigs = Default::default();
                let (text, weights) =
                    encode_native_model(&fused, Some((&model, &qconfigs)), "seed")
                        .expect("seeds encode");
                (json(text), weights)
            });
        float.chain(converted).collect()
    })
}

#[derive(Arbitrary, Debug)]
enum NewValue {
    Int(i64),
    Edge(u8),
    Float(f64),
    Text(String),
    EmptyList,
    Null,
    Bool(bool),
}

impl NewValue {
    fn json(&self) -> Json {
        const EDGES: &[i64] = &[
            0,
            1,
            -1,
            2,
            65_536,
            65_537,
            1 << 32,
            1 << 62,
            i64::MAX,
            i64::MIN,
        ];
        match self {
            NewValue::Int(v) => json!(v),
            NewValue::Edge(k) => json!(EDGES[*k as usize % EDGES.len()]),
            NewValue::Float(f) => json!(f),
            NewValue::Text(s) => json!(s),
            NewValue::EmptyList => json!([]),
            NewValue::Null => Json::Null,
            NewValue::Bool(b) => json!(b),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Replace(NewValue),
    RemoveKey,
    DuplicateEntry,
    DropEntry,
    CopyFromSibling(u16),
}

#[derive(Arbitrary, Debug)]
struct Mutation {
    /// Child choices from the root down; the walk stops at a leaf or the path's end.
    path: Vec<u16>,
    edit: Edit,
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u8,
    mutations: Vec<Mutation>,
    /// (position, byte) writes into the weights file.
    weight_writes: Vec<(u32, u8)>,
    weight_truncate: Option<u32>,
}

/// The JSON pointer of the container the path leads to: it descends while the next value is a
/// list or an object, so key and entry edits have a container to work on.
fn container(root: &Json, path: &[u16]) -> String {
    let mut pointer = String::new();
    let mut node = root;
    for &step in path {
        let (key, next) = match node {
            Json::Array(a) if !a.is_empty() => {
                let k = step as usize % a.len();
                (k.to_string(), &a[k])
            }
            Json::Object(o) if !o.is_empty() => {
                let (k, v) = o
                    .iter()
                    .nth(step as usize % o.len())
                    .expect("index within length");
                (k.replace('~', "~0").replace('/', "~1"), v)
            }
            _ => break,
        };
        if !next.is_array() && !next.is_object() {
            break;
        }
        pointer.push('/');
        pointer.push_str(&key);
        node = next;
    }
    pointer
}

fn apply(root: &mut Json, m: &Mutation) {
    let pointer = container(root, &m.path);
    let Some(node) = root.pointer_mut(&pointer) else {
        return;
    };
    let pick = m.path.last().copied().unwrap_or(0) as usize;
    match (&m.edit, node) {
        (Edit::Replace(v), Json::Array(a)) if !a.is_empty() => {
            let k = pick % a.len();
            a[k] = v.json();
        }
        (Edit::Replace(v), Json::Object(o)) if !o.is_empty() => {
            let k = pick % o.len();
            *o.values_mut().nth(k).expect("index within length") = v.json();
        }
        (Edit::RemoveKey, Json::Object(o)) if !o.is_empty() => {
            let key = o
                .keys()
                .nth(pick % o.len())
                .cloned()
                .expect("index within length");
            o.remove(&key);
        }
        (Edit::DuplicateEntry, Json::Array(a)) if !a.is_empty() => {
            let k = pick % a.len();
            let copy = a[k].clone();
            a.insert(k, copy);
        }
        (Edit::DropEntry, Json::Array(a)) if !a.is_empty() => {
            a.remove(pick % a.len());
        }
        (Edit::CopyFromSibling(from), Json::Array(a)) if !a.is_empty() => {
            let copy = a[*from as usize % a.len()].clone();
            let k = pick % a.len();
            a[k] = copy;
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    let seeds = seeds();
    let (json, weights) = &seeds[input.seed as usize % seeds.len()];
    let mut json = json.clone();
    for m in input.mutations.iter().take(6) {
        apply(&mut json, m);
    }
    let mut weights = weights.clone();
    for &(pos, byte) in input.weight_writes.iter().take(8) {
        if !weights.is_empty() {
            let k = pos as usize % weights.len();
            weights[k] = byte;
        }
    }
    if let Some(t) = input.weight_truncate {
        weights.truncate(t as usize);
    }
    let text = serde_json::to_string(&json).expect("json prints");
    if let Ok(m) = decode_native_model(&text, &weights, "graph.json", "weights.safetensors") {
        qlab_fuzz::exercise(&m.graph);
        if let Some(q) = m.quantized {
            qlab_fuzz::exercise_quantized(&q.model);
        }
    }
});

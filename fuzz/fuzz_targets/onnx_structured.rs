#![no_main]
//! Structure-aware ONNX fuzzing: start from a valid model (the bundled digits networks, the
//! golden workflow models, the parity network, the text model) and apply mutations an exporter
//! would never write but a file can hold — attribute values and lists at the edges of i64,
//! tensor dims that disagree with their data, huge declared inputs, rewired or dropped nodes,
//! another op type, another opset. Import must give a typed error or a model that then runs
//! float and int8 ([`qlab_fuzz::exercise`]) without a panic or an unbounded allocation.

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use qlab::import::onnx::SUPPORTED_OPS;
use qlab::import::onnx::import_onnx_bytes_in;
use qlab::import::onnx::proto::{ModelProto, tensor_shape_proto::dimension::Value as Dim, type_proto};

const SEEDS: &[&[u8]] = &[
    include_bytes!("../../sample-models/digits_cnn.onnx"),
    include_bytes!("../../sample-models/digits_mlp.onnx"),
    include_bytes!("../../sample-models/digits_lstm.onnx"),
    include_bytes!("../../tests/fixtures/golden/workflow_cnn.onnx"),
    include_bytes!("../../tests/fixtures/golden/workflow_mlp_lstm.onnx"),
    include_bytes!("../../tests/fixtures/parity/net.onnx"),
    include_bytes!("../../tests/fixtures/zoo/text.dynamo.onnx"),
];

/// Attribute names the importer reads, so an added attribute is one it looks at.
const ATTRS: &[&str] = &[
    "pads", "strides", "dilations", "kernel_shape", "group", "axis", "axes", "perm", "keepdims",
    "ceil_mode", "count_include_pad", "epsilon", "momentum", "alpha", "beta", "transA", "transB",
    "hidden_size", "direction", "split", "to", "mode", "min", "max", "allowzero", "value",
];

/// An integer that is often at an edge.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Int {
    Small(i8),
    Edge(u8),
    Any(i64),
}

impl Int {
    fn get(self) -> i64 {
        const EDGES: &[i64] = &[
            0, 1, -1, 2, 3, 7, 65_536, 65_537, 1 << 31, 1 << 32, 1 << 40, 1 << 62,
            i64::MAX, i64::MIN, -(1 << 31),
        ];
        match self {
            Int::Small(v) => v as i64,
            Int::Edge(k) => EDGES[k as usize % EDGES.len()],
            Int::Any(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    AttrInt { node: u16, attr: u8, value: Int },
    AttrInts { node: u16, attr: u8, values: Vec<Int> },
    AttrFloat { node: u16, attr: u8, value: f32 },
    AddAttr { node: u16, name: u8, ints: Vec<Int>, float: Option<f32> },
    DropAttr { node: u16, attr: u8 },
    InitDims { init: u16, dims: Vec<Int> },
    InitTruncate { init: u16, keep: u16 },
    InitType { init: u16, data_type: i8 },
    InputDim { input: u8, dim: u8, value: Int },
    InputRank { input: u8, rank: u8 },
    Rewire { node: u16, slot: u8, from: u16 },
    DropInput { node: u16, slot: u8 },
    DropNode { node: u16 },
    CopyNode { node: u16, to: u16 },
    SwapNodes { a: u16, b: u16 },
    OpType { node: u16, op: u8 },
    RenameOutput { node: u16, to: u16 },
    Opset { version: i8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u8,
    mutations: Vec<Mutation>,
}

fn pick(len: usize, k: impl Into<usize>) -> Option<usize> {
    (len > 0).then(|| k.into() % len)
}

fn apply(m: &mut ModelProto, mutation: &Mutation) {
    let Some(g) = m.graph.as_mut() else { return };
    // Every value name in the graph, for rewiring.
    let names: Vec<String> = g
        .input
        .iter()
        .filter_map(|i| i.name.clone())
        .chain(g.initializer.iter().filter_map(|t| t.name.clone()))
        .chain(g.node.iter().flat_map(|n| n.output.clone()))
        .collect();
    let nodes = g.node.len();
    match *mutation {
        Mutation::AttrInt { node, attr, value } => {
            if let Some(n) = pick(nodes, node)
                && let Some(a) = pick(g.node[n].attribute.len(), attr)
            {
                g.node[n].attribute[a].i = Some(value.get());
            }
        }
        Mutation::AttrInts { node, attr, ref values } => {
            if let Some(n) = pick(nodes, node)
                && let Some(a) = pick(g.node[n].attribute.len(), attr)
            {
                g.node[n].attribute[a].ints = values.iter().map(|v| v.get()).collect();
            }
        }
        Mutation::AttrFloat { node, attr, value } => {
            if let Some(n) = pick(nodes, node)
                && let Some(a) = pick(g.node[n].attribute.len(), attr)
            {
                g.node[n].attribute[a].f = Some(value);
            }
        }
        Mutation::AddAttr { node, name, ref ints, float } => {
            if let Some(n) = pick(nodes, node) {
                let name = ATTRS[name as usize % ATTRS.len()].to_string();
                let mut a = qlab::import::onnx::proto::AttributeProto {
                    name: Some(name),
                    ..Default::default()
                };
                match (ints.as_slice(), float) {
                    ([one], None) => {
                        a.i = Some(one.get());
                        a.r#type = Some(2);
                    }
                    (_, Some(f)) => {
                        a.f = Some(f);
                        a.r#type = Some(1);
                    }
                    (many, None) => {
                        a.ints = many.iter().map(|v| v.get()).collect();
                        a.r#type = Some(7);
                    }
                }
                g.node[n].attribute.push(a);
            }
        }
        Mutation::DropAttr { node, attr } => {
            if let Some(n) = pick(nodes, node)
                && let Some(a) = pick(g.node[n].attribute.len(), attr)
            {
                g.node[n].attribute.remove(a);
            }
        }
        Mutation::InitDims { init, ref dims } => {
            if let Some(i) = pick(g.initializer.len(), init) {
                g.initializer[i].dims = dims.iter().map(|v| v.get()).collect();
            }
        }
        Mutation::InitTruncate { init, keep } => {
            if let Some(i) = pick(g.initializer.len(), init) {
                let t = &mut g.initializer[i];
                if let Some(raw) = t.raw_data.as_mut() {
                    raw.truncate(keep as usize);
                }
                t.float_data.truncate(keep as usize);
                t.int64_data.truncate(keep as usize);
            }
        }
        Mutation::InitType { init, data_type } => {
            if let Some(i) = pick(g.initializer.len(), init) {
                g.initializer[i].data_type = Some(data_type as i32);
            }
        }
        Mutation::InputDim { input, dim, value } => {
            if let Some(i) = pick(g.input.len(), input)
                && let Some(type_proto::Value::TensorType(t)) =
                    g.input[i].r#type.as_mut().and_then(|t| t.value.as_mut())
                && let Some(shape) = t.shape.as_mut()
                && let Some(d) = pick(shape.dim.len(), dim)
            {
                shape.dim[d].value = Some(Dim::DimValue(value.get()));
            }
        }
        Mutation::InputRank { input, rank } => {
            if let Some(i) = pick(g.input.len(), input)
                && let Some(type_proto::Value::TensorType(t)) =
                    g.input[i].r#type.as_mut().and_then(|t| t.value.as_mut())
                && let Some(shape) = t.shape.as_mut()
            {
                let want = rank as usize % 7;
                let last = shape.dim.last().cloned().unwrap_or_default();
                shape.dim.resize(want, last);
            }
        }
        Mutation::Rewire { node, slot, from } => {
            if let Some(n) = pick(nodes, node)
                && let Some(s) = pick(g.node[n].input.len(), slot)
                && let Some(f) = pick(names.len(), from)
            {
                g.node[n].input[s] = names[f].clone();
            }
        }
        Mutation::DropInput { node, slot } => {
            if let Some(n) = pick(nodes, node)
                && let Some(s) = pick(g.node[n].input.len(), slot)
            {
                g.node[n].input.remove(s);
            }
        }
        Mutation::DropNode { node } => {
            if let Some(n) = pick(nodes, node) {
                g.node.remove(n);
            }
        }
        Mutation::CopyNode { node, to } => {
            if let Some(n) = pick(nodes, node) {
                let copy = g.node[n].clone();
                g.node.insert(to as usize % (nodes + 1), copy);
            }
        }
        Mutation::SwapNodes { a, b } => {
            if let (Some(a), Some(b)) = (pick(nodes, a), pick(nodes, b)) {
                g.node.swap(a, b);
            }
        }
        Mutation::OpType { node, op } => {
            if let Some(n) = pick(nodes, node) {
                g.node[n].op_type = Some(SUPPORTED_OPS[op as usize % SUPPORTED_OPS.len()].into());
            }
        }
        Mutation::RenameOutput { node, to } => {
            if let Some(n) = pick(nodes, node)
                && let Some(t) = pick(names.len(), to)
                && !g.node[n].output.is_empty()
            {
                g.node[n].output[0] = names[t].clone();
            }
        }
        Mutation::Opset { version } => {
            for o in &mut m.opset_import {
                if o.domain.as_deref().unwrap_or("").is_empty() {
                    o.version = Some(version as i64);
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let seed = SEEDS[input.seed as usize % SEEDS.len()];
    let mut model = ModelProto::decode(seed).expect("seed models decode");
    for m in input.mutations.iter().take(8) {
        apply(&mut model, m);
    }
    // The text model's weights are external, beside it; a mutated location must stay inside.
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/zoo");
    if let Ok(graph) = import_onnx_bytes_in(&model.encode_to_vec(), "fuzz.onnx", folder.as_ref()) {
        qlab_fuzz::exercise(&graph);
    }
});

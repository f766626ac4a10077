//! `prepare`: decides where every node runs (float or quantized), inserts the stubs that mark
//! the boundaries, and attaches an activation observer wherever a quantized kernel needs output
//! qparams — PyTorch eager's `propagate_qconfig_` + `add_observer_` + `QuantWrapper`.
//!
//! A graph that already has QuantStub / DeQuantStub nodes is treated as PyTorch eager treats a
//! model with stubs: a float tensor reaching a quantized module (or the reverse) is an error that
//! names the module and the fix. A graph without stubs is wrapped as `QuantWrapper` would: a
//! `quant` stub on each input, a `dequant` stub on each output, and stubs around every module
//! kept in float (qconfig `None`, or an op without a quantized kernel), so any model quantizes.
//!
//! Observers sit where eager mode puts them: on the outputs of QuantStubs, of Conv / Linear
//! (after their fused activation), of Hardswish and of the functional add / add_relu / mul /
//! cat. Ops whose quantized kernel keeps or fixes its qparams (ReLU, pooling, mean, slicing and
//! reshapes, sigmoid, hardsigmoid) get none.

use super::WorkflowError;
use super::modules::fused_class;
use super::qconfig_map::QConfigMap;
use crate::graph::{FreshNames, Graph, Node, Op, ReduceParams, Reduction, Unary};
use crate::observer::{Observer, ObserverSpec};
use crate::qconfig::QConfig;
use std::collections::{BTreeMap, HashMap};

/// Where a node of the prepared graph runs after convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In float, on float inputs.
    Float,
    /// A quantized kernel on quantized inputs.
    Quantized,
    /// A fused module's activation that its first member computes (identity after convert).
    Absorbed,
}

/// An activation observer and what it has seen.
#[derive(Debug, Clone)]
pub struct ActivationObserver {
    /// The module the observer belongs to (PyTorch's `activation_post_process` owner).
    pub owner: String,
    /// The graph value it watches.
    pub value: String,
    pub observer: Box<dyn Observer>,
    /// The spec qparams are derived with: the observer's own, or another one re-derived from
    /// the same statistics (`qconfig` changed after calibration).
    pub spec: ObserverSpec,
    /// Batches it has seen.
    pub batches: usize,
    /// How many times each batch is shown to it: 2 for the observer of a fused module that is
    /// an `nn.Sequential` (ConvReLU2d, LinearReLU, BNReLU2d). PyTorch adds the observer as a
    /// child of that Sequential *and* as its forward hook, so it runs once inside the forward
    /// and once more in the hook. Recorded histograms show it (counts doubled).
    pub passes: usize,
    /// Non-finite values it was shown (they are not recorded: the pre-convert check refuses).
    pub nonfinite: u64,
}

/// A model ready for calibration.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The fused float graph with boundary stubs inserted.
    pub graph: Graph,
    /// Every node's qconfig after propagation (`None`: float).
    pub qconfigs: BTreeMap<String, Option<QConfig>>,
    /// Every node's placement.
    pub placement: BTreeMap<String, Placement>,
    /// Observers in graph order.
    pub observers: Vec<ActivationObserver>,
    /// Calibration batches run so far.
    pub batches: usize,
}

/// What a node's quantized form needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    QuantStub,
    DeQuantStub,
    /// A quantized kernel with observed output qparams (conv, linear, add, mul, cat).
    Observed,
    /// A quantized kernel that keeps or fixes its qparams: runs in whichever domain its data
    /// input is in.
    Follows,
    /// No quantized kernel.
    FloatOnly,
}

fn symmetric(begin: &[usize], end: &[usize]) -> bool {
    begin == end
}

fn kind(graph: &Graph, node: &Node) -> Kind {
    let runtime_inputs = node
        .inputs
        .iter()
        .filter(|i| !i.is_empty() && !graph.constants.contains_key(*i))
        .count();
    match &node.op {
        Op::QuantStub => Kind::QuantStub,
        Op::DeQuantStub => Kind::DeQuantStub,
        Op::Conv(c) if symmetric(&c.pad_begin, &c.pad_end) && (1..=3).contains(&c.stride.len()) => {
            Kind::Observed
        }
        Op::Linear(_) => Kind::Observed,
        // nn.quantized.Hardswish has its own output observer.
        Op::Unary(Unary::HardSwish) => Kind::Observed,
        Op::Add | Op::Mul if runtime_inputs == 2 => Kind::Observed,
        Op::Concat { .. } if runtime_inputs == node.inputs.len() => Kind::Observed,
        Op::MaxPool(p) | Op::AvgPool(p)
            if p.kernel.len() == 2 && symmetric(&p.pad_begin, &p.pad_end) =>
        {
            Kind::Follows
        }
        Op::Relu
        | Op::Clip { .. }
        | Op::Sigmoid
        | Op::Tanh
        | Op::GlobalAvgPool
        | Op::Resize { .. }
        | Op::Identity
        | Op::Flatten { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Slice
        | Op::Split { .. }
        | Op::Expand
        | Op::Tile
        | Op::Reduce(ReduceParams {
            kind: Reduction::Mean,
            ..
        }) => Kind::Follows,
        // Indexing a tensor (not an embedding table: its data operand is a constant).
        Op::Gather { .. }
            if node
                .inputs
                .first()
                .is_some_and(|i| !graph.constants.contains_key(i)) =>
        {
            Kind::Follows
        }
        // F.hardsigmoid on a quantized tensor fixes its output qparams; only PyTorch's own
        // parameters (1/6, 1/2) have a quantized kernel.
        Op::Unary(Unary::HardSigmoid { alpha, beta })
            if crate::graph::ops::is_torch_hardsigmoid(*alpha, *beta) =>
        {
            Kind::Follows
        }
        _ => Kind::FloatOnly,
    }
}

/// The value a node's quantized kernel reads as data (shape operands are not data).
fn data_inputs<'a>(graph: &Graph, node: &'a Node) -> Vec<&'a str> {
    let all = node
        .inputs
        .iter()
        .filter(|i| !i.is_empty() && !graph.constants.contains_key(*i));
    match kind(graph, node) {
        Kind::Follows | Kind::QuantStub | Kind::DeQuantStub => {
            all.take(1).map(String::as_str).collect()
        }
        _ => all.map(String::as_str).collect(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Domain {
    Float,
    Quant,
}

/// Fused (eval) groups by their first module: the members still present as nodes, in order,
/// and whether the fused module is a Sequential of several modules.
fn fused_groups(graph: &Graph) -> HashMap<String, (Vec<usize>, bool)> {
    let index = crate::graph::index_by_name(&graph.nodes);
    graph
        .fusions
        .iter()
        .filter(|f| !f.qat)
        .map(|f| {
            let members = f
                .modules
                .iter()
                .filter_map(|m| index.get(m.as_str()).copied())
                .collect();
            (f.modules[0].clone(), (members, fused_class(f).1.len() >= 2))
        })
        .collect()
}

/// The graph under construction and the bookkeeping of the boundaries inserted so far.
struct Builder<'g> {
    out: Graph,
    strict: bool,
    taken: FreshNames,
    producer: HashMap<&'g str, &'g str>,
    domain: HashMap<String, Domain>,
    /// Values re-expressed in the other domain by an inserted stub.
    converted: HashMap<(String, Domain), String>,
    placement: BTreeMap<String, Placement>,
    qconfigs: BTreeMap<String, Option<QConfig>>,
    /// (owner, observed value, qconfig, passes) in graph order.
    observed: Vec<(String, String, QConfig, usize)>,
    /// The global qconfig: what a `quant` stub wrapping a model input gets, as QuantWrapper's
    /// stub inherits the root's qconfig (not that of the module it happens to feed).
    global: Option<QConfig>,
}

/// The consumer name used for the model's outputs.
const MODEL_OUTPUT: &str = "<model output>";

impl Builder<'_> {
    /// `value` in domain `want` for `consumer` (with qconfig `q`), inserting a stub if needed.
    fn ensure(
        &mut self,
        value: &str,
        want: Domain,
        consumer: &str,
        q: Option<&QConfig>,
    ) -> Result<String, WorkflowError> {
        let have = self.domain.get(value).copied().unwrap_or(Domain::Float);
        if have == want {
            return Ok(value.to_string());
        }
        if let Some(v) = self.converted.get(&(value.to_string(), want)) {
            return Ok(v.clone());
        }
        // With stubs, eager semantics apply; only the model output is dequantized for the caller.
        if self.strict && consumer != MODEL_OUTPUT {
            return Err(match want {
                Domain::Quant => WorkflowError::Check {
                    module: consumer.into(),
                    problem: "a float tensor reaches this quantized module".into(),
                    fix: "put a QuantStub before it, or set its qconfig to none".into(),
                },
                Domain::Float => WorkflowError::Check {
                    module: consumer.into(),
                    problem: "a quantized tensor reaches this float module".into(),
                    fix: "put a DeQuantStub before it".into(),
                },
            });
        }
        let (op, base) = match (want, self.producer.get(value)) {
            (Domain::Quant, None) => (Op::QuantStub, "quant".to_string()),
            (Domain::Quant, Some(p)) => (Op::QuantStub, format!("{p}.quant")),
            (Domain::Float, _) if consumer == MODEL_OUTPUT => (Op::DeQuantStub, "dequant".into()),
            (Domain::Float, _) => (Op::DeQuantStub, format!("{consumer}.dequant")),
        };
        let is_input = !self.producer.contains_key(value);
        let name = self.taken.claim(&base);
        if want == Domain::Quant {
            let own = q.expect("quantized consumers have a qconfig");
            let q = match (&self.global, is_input) {
                (Some(g), true) => g.clone(),
                _ => own.clone(),
            };
            self.observed
                .push((name.clone(), name.clone(), q.clone(), 1));
            self.qconfigs.insert(name.clone(), Some(q));
        } else {
            self.qconfigs.insert(name.clone(), None);
        }
        self.placement.insert(name.clone(), Placement::Quantized);
        self.out.nodes.push(Node {
            name: name.clone(),
            op,
            inputs: vec![value.to_string()],
            outputs: vec![name.clone()],
        });
        self.domain.insert(name.clone(), want);
        self.converted
            .insert((value.to_string(), want), name.clone());
        Ok(name)
    }
}

/// Builds the prepared graph: see the module docs. `graph` should already be fused.
pub fn prepare(graph: &Graph, qconfigs: &QConfigMap) -> Result<Prepared, WorkflowError> {
    let mut resolved = qconfigs.resolve(graph)?;
    for (module, q) in &resolved {
        if let Some(q) = q {
            q.validate().map_err(|source| WorkflowError::QConfig {
                module: module.clone(),
                source,
            })?;
        }
    }
    let groups = fused_groups(graph);
    // A fused group is one module: every member takes the first one's qconfig.
    let mut absorbed_by: HashMap<usize, usize> = HashMap::new();
    for (members, _) in groups.values() {
        let head_q = resolved[&graph.nodes[members[0]].name].clone();
        for &m in &members[1..] {
            absorbed_by.insert(m, members[0]);
            resolved.insert(graph.nodes[m].name.clone(), head_q.clone());
        }
    }
    // Where each fused group's observer goes: the output of its last member.
    let group_output: HashMap<usize, (String, bool)> = groups
        .values()
        .map(|(m, sequential)| {
            let last = &graph.nodes[*m.last().expect("non-empty")];
            (m[0], (last.outputs[0].clone(), *sequential))
        })
        .collect();
    let mut b = Builder {
        out: Graph {
            inputs: graph.inputs.clone(),
            outputs: Vec::new(),
            nodes: Vec::new(),
            constants: graph.constants.clone(),
            fusions: graph.fusions.clone(),
        },
        strict: graph
            .nodes
            .iter()
            .any(|n| matches!(n.op, Op::QuantStub | Op::DeQuantStub)),
        taken: FreshNames::new(graph.nodes.iter().map(|n| n.name.clone())),
        producer: graph
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter().map(move |o| (o.as_str(), n.name.as_str())))
            .collect(),
        domain: graph
            .inputs
            .iter()
            .map(|i| (i.name.clone(), Domain::Float))
            .collect(),
        converted: HashMap::new(),
        placement: BTreeMap::new(),
        qconfigs: resolved,
        observed: Vec::new(),
        global: qconfigs
            .entries
            .iter()
            .rev()
            .find(|(k, _)| *k == super::QConfigKey::Global)
            .and_then(|(_, q)| q.clone()),
    };

    for (i, node) in graph.nodes.iter().enumerate() {
        let q = b.qconfigs[&node.name].clone();
        let k = kind(graph, node);
        let data = data_inputs(graph, node);
        let in_domain = data.first().map_or(Domain::Float, |v| {
            b.domain.get(*v).copied().unwrap_or(Domain::Float)
        });
        let head_quantized = absorbed_by
            .get(&i)
            .is_some_and(|h| b.placement.get(&graph.nodes[*h].name) == Some(&Placement::Quantized));
        let place = match k {
            _ if head_quantized && matches!(node.op, Op::Relu) => Placement::Absorbed,
            _ if head_quantized => Placement::Quantized,
            Kind::QuantStub | Kind::Observed if q.is_some() => Placement::Quantized,
            Kind::DeQuantStub => Placement::Quantized,
            Kind::Follows if in_domain == Domain::Quant => Placement::Quantized,
            _ => Placement::Float,
        };
        let mut new_node = node.clone();
        if !matches!(k, Kind::QuantStub | Kind::DeQuantStub) {
            let want = match place {
                Placement::Float => Domain::Float,
                _ => Domain::Quant,
            };
            for input in new_node.inputs.iter_mut() {
                if data.contains(&input.as_str()) {
                    *input = b.ensure(input, want, &node.name, q.as_ref())?;
                }
            }
        }
        let out_domain = match (k, place) {
            (Kind::DeQuantStub, _) | (_, Placement::Float) => Domain::Float,
            _ => Domain::Quant,
        };
        for o in &node.outputs {
            b.domain.insert(o.clone(), out_domain);
        }
        if place == Placement::Quantized && matches!(k, Kind::Observed | Kind::QuantStub) {
            let (value, sequential) = group_output
                .get(&i)
                .cloned()
                .unwrap_or_else(|| (node.outputs[0].clone(), false));
            let q = q.expect("quantized modules have a qconfig");
            b.observed
                .push((node.name.clone(), value, q, 1 + sequential as usize));
        }
        b.placement.insert(node.name.clone(), place);
        b.out.nodes.push(new_node);
    }
    for o in &graph.outputs {
        let v = b.ensure(o, Domain::Float, MODEL_OUTPUT, None)?;
        b.out.outputs.push(v);
    }
    let observers = b
        .observed
        .into_iter()
        .map(|(owner, value, q, passes)| {
            let observer =
                q.activation
                    .observer()
                    .build()
                    .map_err(|source| WorkflowError::Observer {
                        module: owner.clone(),
                        source,
                    })?;
            Ok(ActivationObserver {
                owner,
                value,
                spec: observer.spec().clone(),
                observer,
                batches: 0,
                passes,
                nonfinite: 0,
            })
        })
        .collect::<Result<Vec<_>, WorkflowError>>()?;
    Ok(Prepared {
        graph: b.out,
        qconfigs: b.qconfigs,
        placement: b.placement,
        observers,
        batches: 0,
    })
}

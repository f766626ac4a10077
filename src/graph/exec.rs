//! Float execution of a graph: nodes run in order over a name → value environment, and values
//! are dropped after their last reader so large models stay within memory. A pointwise
//! activation that is its operand's last reader runs in the operand's buffer.

use super::{Graph, GraphError, Node, Value, ops};
use std::collections::HashMap;

/// Every node's name and outputs from one run, in execution order.
pub type NodeOutputs = Vec<(String, Vec<Value>)>;

/// Runs `graph` on `inputs` (one per graph input, in order) and returns the graph outputs.
/// `on_node` sees every node's outputs as they are produced (for observers and analysis).
pub fn run(
    graph: &Graph,
    inputs: Vec<Value>,
    mut on_node: impl FnMut(&Node, &[Value]),
) -> Result<Vec<Value>, GraphError> {
    check_inputs(graph, &inputs)?;
    let mut env: HashMap<&str, Value> = HashMap::new();
    for (spec, value) in graph.inputs.iter().zip(inputs) {
        env.insert(spec.name.as_str(), value);
    }
    let last_use = last_uses(graph);
    for (i, node) in graph.nodes.iter().enumerate() {
        if crate::cancel::is_requested() {
            return Err(GraphError::Cancelled);
        }
        let outs = match in_place(graph, node, i, &last_use, &mut env) {
            Some(outs) => outs,
            None => ops::eval(node, &node_args(graph, node, &env)?)?,
        };
        on_node(node, &outs);
        for name in &node.inputs {
            if last_use.get(name.as_str()) == Some(&i) && !graph.outputs.contains(name) {
                env.remove(name.as_str());
            }
        }
        for (name, value) in node.outputs.iter().zip(outs) {
            env.insert(name.as_str(), value);
        }
    }
    graph
        .outputs
        .iter()
        .map(|name| {
            env.remove(name.as_str())
                .or_else(|| graph.constants.get(name).cloned())
                .ok_or_else(|| GraphError::Dangling {
                    node: "<graph output>".into(),
                    value: name.clone(),
                })
        })
        .collect()
}

/// Runs `node` in its operand's buffer when it is a pointwise activation, node `i` is the
/// operand's last reader and the operand is a contiguous f32 activation (not a graph output or
/// constant); `None` leaves `env` untouched.
fn in_place<'g>(
    graph: &Graph,
    node: &'g Node,
    i: usize,
    last_use: &HashMap<&str, usize>,
    env: &mut HashMap<&'g str, Value>,
) -> Option<Vec<Value>> {
    let [name] = node.inputs.as_slice() else {
        return None;
    };
    let owned = last_use.get(name.as_str()) == Some(&i) && !graph.outputs.contains(name);
    if !owned || !matches!(env.get(name.as_str()), Some(Value::F32(a)) if a.is_standard_layout()) {
        return None;
    }
    let Some(Value::F32(mut a)) = env.remove(name.as_str()) else {
        unreachable!("checked above");
    };
    if ops::pointwise_in_place(&node.op, a.as_slice_mut().expect("standard layout")) {
        Some(vec![Value::F32(a)])
    } else {
        env.insert(name.as_str(), Value::F32(a));
        None
    }
}

/// A node's operands from the environment or the constants (`None` for an absent optional
/// operand).
pub(super) fn node_args<'a>(
    graph: &'a Graph,
    node: &Node,
    env: &'a HashMap<&str, Value>,
) -> Result<Vec<Option<&'a Value>>, GraphError> {
    node.inputs
        .iter()
        .map(|name| {
            if name.is_empty() {
                Ok(None)
            } else {
                env.get(name.as_str())
                    .or_else(|| graph.constants.get(name))
                    .map(Some)
                    .ok_or_else(|| GraphError::Dangling {
                        node: node.name.clone(),
                        value: name.clone(),
                    })
            }
        })
        .collect()
}

/// Index of the last node that reads each value.
pub(crate) fn last_uses(graph: &Graph) -> HashMap<&str, usize> {
    let mut last = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        for name in &node.inputs {
            last.insert(name.as_str(), i);
        }
    }
    last
}

pub(crate) fn check_inputs(graph: &Graph, inputs: &[Value]) -> Result<(), GraphError> {
    if inputs.len() != graph.inputs.len() {
        return Err(GraphError::BadInput {
            input: graph
                .inputs
                .first()
                .map_or_else(String::new, |i| i.name.clone()),
            detail: format!(
                "the model takes {} input(s), {} given",
                graph.inputs.len(),
                inputs.len()
            ),
        });
    }
    for (spec, value) in graph.inputs.iter().zip(inputs) {
        let shape = value.shape();
        let matches = shape.len() == spec.shape.len()
            && spec
                .shape
                .iter()
                .zip(shape)
                .all(|(want, &got)| want.is_none_or(|w| w == got));
        if !matches {
            let want: Vec<String> = spec
                .shape
                .iter()
                .map(|d| d.map_or("N".to_string(), |d| d.to_string()))
                .collect();
            return Err(GraphError::BadInput {
                input: spec.name.clone(),
                detail: format!("expected shape [{}], got {:?}", want.join(", "), shape),
            });
        }
    }
    Ok(())
}

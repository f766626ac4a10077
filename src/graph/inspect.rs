//! A model listing for `qlab inspect`: each node's path, op, attributes, shapes and parameters,
//! with shapes found by running the model once on zeros (dynamic dims set to 1).

use super::{Graph, GraphError, Value, run};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

/// One row of the listing.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSummary {
    pub name: String,
    pub op: &'static str,
    pub attributes: String,
    pub input_shapes: Vec<Vec<usize>>,
    pub output_shapes: Vec<Vec<usize>>,
    pub params: usize,
}

/// Summarises every node, probing shapes with a batch of one.
pub fn summarize(graph: &Graph) -> Result<Vec<NodeSummary>, GraphError> {
    let inputs: Vec<Value> = graph
        .inputs
        .iter()
        .map(|i| {
            Value::F32(ArrayD::zeros(IxDyn(
                &i.shape.iter().map(|d| d.unwrap_or(1)).collect::<Vec<_>>(),
            )))
        })
        .collect();
    let mut shapes: HashMap<String, Vec<usize>> = graph
        .inputs
        .iter()
        .zip(&inputs)
        .map(|(i, v)| (i.name.clone(), v.shape().to_vec()))
        .collect();
    for (name, v) in &graph.constants {
        shapes.insert(name.clone(), v.shape().to_vec());
    }
    let mut rows = Vec::with_capacity(graph.nodes.len());
    run(graph, inputs, |node, outs| {
        let input_shapes = node
            .inputs
            .iter()
            .filter(|i| !i.is_empty())
            .map(|i| shapes.get(i).cloned().unwrap_or_default())
            .collect();
        for (name, v) in node.outputs.iter().zip(outs) {
            shapes.insert(name.clone(), v.shape().to_vec());
        }
        rows.push(NodeSummary {
            name: node.name.clone(),
            op: node.op.kind(),
            attributes: node.op.describe(),
            input_shapes,
            output_shapes: outs.iter().map(|v| v.shape().to_vec()).collect(),
            params: node.op.param_count(),
        });
    })?;
    Ok(rows)
}

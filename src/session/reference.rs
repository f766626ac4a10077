//! `compare reference`: the converted model against a reference int8 model's per-module dump
//! (see [`crate::analysis::compare_reference`]) — a summary naming the first module that
//! differs, then every module that differs or has no counterpart, in the reference's order.

use super::{Output, SessionError, Table, Workbench};
use crate::analysis::match_modules;
use crate::analysis::{RefRow, compare_reference, first_divergence, read_layer_dump, read_qparams};
use crate::graph::Op;
use crate::import::DatasetError;
use crate::workflow::{self, Placement};
use std::collections::HashMap;

fn describe(r: &RefRow) -> String {
    let node = r
        .node
        .as_ref()
        .map_or("-".to_string(), |(n, op)| format!("{n} ({op})"));
    let qp = match (r.scale, r.zero_point) {
        (Some(s), Some(z)) => format!(
            "scale {s:e} vs {:e}, zero point {z} vs {}",
            r.ref_scale, r.ref_zero_point
        ),
        _ => "qlab's output is not per-tensor quantized".into(),
    };
    let ints = match &r.note {
        Some(n) => n.clone(),
        None if r.count > 0 => format!(
            "{} of {} integers differ (max {} LSB)",
            r.differing, r.count, r.max_lsb
        ),
        None => "qparams only".into(),
    };
    format!("{} ← {node}: {qp}; {ints}", r.module)
}

impl Workbench {
    /// `convert qparams=FILE`: the calibrated model converted with a reference's output qparams
    /// wherever the reference names a module; says which it took and which it could not place.
    pub(super) fn convert_with_reference(&mut self, qparams: &str) -> Result<Output, SessionError> {
        if self.qat.is_some() {
            return Err(SessionError::QatModel {
                command: "convert qparams=",
            });
        }
        let prepared = self.prepared.as_ref().ok_or(SessionError::NotPrepared)?;
        let refs = read_qparams(&self.at(qparams))?;
        let names: Vec<(&str, bool)> = refs
            .iter()
            .map(|r| (r.module.as_str(), r.is_functional()))
            .collect();
        let g = &prepared.graph;
        let quantized = |i: usize| {
            prepared.placement.get(&g.nodes[i].name) == Some(&Placement::Quantized)
                && prepared
                    .observers
                    .iter()
                    .any(|o| o.owner == g.nodes[i].name)
        };
        let functional = |i: usize| {
            quantized(i) && matches!(g.nodes[i].op, Op::Add | Op::Mul | Op::Concat { .. })
        };
        let matched = match_modules(g, &names, quantized, functional);
        let mut given = HashMap::new();
        let mut unplaced = Vec::new();
        for (r, m) in refs.iter().zip(&matched) {
            match m {
                Some(i) => {
                    given.insert(g.nodes[*i].name.clone(), (r.scale, r.zero_point));
                }
                None => unplaced.push(r.module.clone()),
            }
        }
        let model = workflow::convert_with_qparams(prepared, self.numerics, &given)?;
        let own = prepared.observers.len().saturating_sub(given.len());
        let mut note = format!(
            "\nqparams of {} module(s) from {qparams}; {own} observer(s) kept their own",
            given.len()
        );
        if !unplaced.is_empty() {
            note.push_str(&format!("; not in the model: {}", unplaced.join(", ")));
        }
        Ok(match self.install(model) {
            Output::Table { title, table } => Output::Table {
                title: title + &note,
                table,
            },
            other => other,
        })
    }

    pub(super) fn compare_reference(
        &self,
        layers: &str,
        data: &str,
        qparams: Option<&str>,
        sample: usize,
    ) -> Result<Output, SessionError> {
        let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
        let d = self.dataset(data)?;
        d.check_model(&model.graph)?;
        if sample >= d.len() {
            return Err(DatasetError::InputMismatch {
                dataset: data.into(),
                input: model.graph.inputs[0].name.clone(),
                detail: format!("sample={sample}, but the dataset has {} samples", d.len()),
            }
            .into());
        }
        let outputs = read_layer_dump(&self.at(layers))?;
        let qp = match qparams {
            Some(q) => read_qparams(&self.at(q))?,
            None => Vec::new(),
        };
        let rows = compare_reference(model, d.rows(sample..sample + 1), &outputs, &qp)?;
        let matched = rows.iter().filter(|r| !r.unmatched()).count();
        let agree = rows.iter().filter(|r| r.agrees()).count();
        let first = first_divergence(&rows).map_or_else(|| "none".to_string(), describe);
        let title = format!(
            "{data}[{sample}] against {layers}: {} reference modules, {matched} matched, {agree} identical (qparams and integers); first divergence: {first}",
            rows.len()
        );
        let table_rows = rows
            .iter()
            .filter(|r| !r.agrees())
            .map(|r| {
                let (node, op) = r
                    .node
                    .as_ref()
                    .map_or(("-".to_string(), "-"), |(n, op)| (n.clone(), *op));
                vec![
                    r.module.clone(),
                    node,
                    op.to_string(),
                    r.scale.map_or("-".into(), |s| format!("{s:.6e}")),
                    format!("{:.6e}", r.ref_scale),
                    r.zero_point.map_or("-".into(), |z| z.to_string()),
                    r.ref_zero_point.to_string(),
                    r.differing.to_string(),
                    r.count.to_string(),
                    r.max_lsb.to_string(),
                    r.note.clone().unwrap_or_default(),
                ]
            })
            .collect();
        Ok(Output::Table {
            title,
            table: Table {
                headers: Table::header_row(&[
                    "module",
                    "qlab node",
                    "op",
                    "scale",
                    "ref_scale",
                    "zp",
                    "ref_zp",
                    "differ",
                    "of",
                    "max_lsb",
                    "note",
                ]),
                rows: table_rows,
            },
        })
    }
}

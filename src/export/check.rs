//! The ONNX checker's structural rules that qlab can apply itself, run on every model it writes
//! (and by tests on what it reads back): an opset is declared; every node has an op type and
//! reads only values defined before it (graph inputs, initializers, earlier outputs); no value
//! is defined twice; each initializer's bytes fill its shape; every graph output is produced;
//! QuantizeLinear / DequantizeLinear scales and zero points agree in shape, per tensor (scalar)
//! or per axis (1-d, as long as the axis dim of a constant input).

use crate::import::onnx::proto::{ModelProto, NodeProto, TensorProto};
use std::collections::{HashMap, HashSet};

/// Bytes per element of the types qlab writes; `None` for others.
fn width(data_type: i32) -> Option<usize> {
    match data_type {
        2 | 3 | 9 => Some(1),
        1 | 6 => Some(4),
        7 | 11 => Some(8),
        10 => Some(2),
        _ => None,
    }
}

fn check_initializer(t: &TensorProto) -> Result<(), String> {
    let name = t.name.as_deref().unwrap_or("");
    let count = t.dims.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
    });
    let count = count.ok_or_else(|| format!("initializer '{name}' has dims {:?}", t.dims))?;
    let w = t
        .data_type
        .and_then(width)
        .ok_or_else(|| format!("initializer '{name}' has data type {:?}", t.data_type))?;
    match &t.raw_data {
        Some(raw) if raw.len() != count * w => Err(format!(
            "initializer '{name}' holds {} bytes, its dims {:?} need {}",
            raw.len(),
            t.dims,
            count * w
        )),
        Some(_) => Ok(()),
        None => {
            let typed = t.float_data.len() + t.int32_data.len() + t.int64_data.len();
            (typed == count).then_some(()).ok_or_else(|| {
                format!(
                    "initializer '{name}' holds {typed} values, its dims {:?} need {count}",
                    t.dims
                )
            })
        }
    }
}

fn int_attr(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
        .and_then(|a| a.i)
}

/// Scale and zero point of a Q/DQ node: same dims, scalar or 1-d; a 1-d one as long as the axis
/// dim of the node's input when that input is an initializer.
fn check_qdq(n: &NodeProto, inits: &HashMap<&str, &TensorProto>) -> Result<(), String> {
    let name = n.name.as_deref().unwrap_or("");
    let dims = |i: usize| {
        n.input
            .get(i)
            .filter(|s| !s.is_empty())
            .and_then(|s| inits.get(s.as_str()))
            .map(|t| t.dims.clone())
    };
    let scale = dims(1).ok_or_else(|| format!("node '{name}': its scale is not an initializer"))?;
    if scale.len() > 1 {
        return Err(format!(
            "node '{name}': scale dims {scale:?} (scalar or 1-d)"
        ));
    }
    if let Some(z) = dims(2).filter(|z| *z != scale) {
        return Err(format!(
            "node '{name}': zero point dims {z:?} differ from scale dims {scale:?}"
        ));
    }
    if let (Some(x), [len]) = (dims(0), scale.as_slice()) {
        let axis = int_attr(n, "axis").unwrap_or(1);
        let a = if axis < 0 {
            axis + x.len() as i64
        } else {
            axis
        };
        if usize::try_from(a).ok().and_then(|a| x.get(a)) != Some(len) {
            return Err(format!(
                "node '{name}': {len} scales along axis {axis} of an input of dims {x:?}"
            ));
        }
    }
    Ok(())
}

/// Records `v` as defined, refusing a second definition.
fn define(names: &mut HashSet<String>, v: &str) -> Result<(), String> {
    if names.insert(v.to_string()) {
        Ok(())
    } else {
        Err(format!("value '{v}' is defined twice"))
    }
}

/// Every rule above, or the first one broken.
pub fn check_model(m: &ModelProto) -> Result<(), String> {
    if !m
        .opset_import
        .iter()
        .any(|o| o.domain.as_deref().unwrap_or("").is_empty())
    {
        return Err("no default-domain opset".into());
    }
    let g = m.graph.as_ref().ok_or("no graph")?;
    let mut names = HashSet::new();
    let mut inits = HashMap::new();
    for t in &g.initializer {
        check_initializer(t)?;
        let name = t.name.as_deref().unwrap_or("");
        define(&mut names, name)?;
        inits.insert(name, t);
    }
    for i in &g.input {
        let name = i.name.as_deref().unwrap_or("");
        if i.r#type.is_none() {
            return Err(format!("graph input '{name}' has no type"));
        }
        if !inits.contains_key(name) {
            define(&mut names, name)?;
        }
    }
    for n in &g.node {
        let name = n.name.as_deref().unwrap_or("");
        if n.op_type.as_deref().unwrap_or("").is_empty() {
            return Err(format!("node '{name}' has no op type"));
        }
        if let Some(i) = n
            .input
            .iter()
            .find(|i| !i.is_empty() && !names.contains(*i))
        {
            return Err(format!(
                "node '{name}' reads '{i}', which nothing before it defines"
            ));
        }
        if matches!(
            n.op_type.as_deref(),
            Some("QuantizeLinear" | "DequantizeLinear")
        ) {
            check_qdq(n, &inits)?;
        }
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            define(&mut names, o)?;
        }
    }
    for o in &g.output {
        let name = o.name.as_deref().unwrap_or("");
        if !names.contains(name) {
            return Err(format!("graph output '{name}' is never produced"));
        }
        if o.r#type.is_none() {
            return Err(format!("graph output '{name}' has no type"));
        }
    }
    Ok(())
}

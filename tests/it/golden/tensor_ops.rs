//! Golden checks for the tensor operations on quantized tensors (golden README §8): `mean`,
//! `sort`, `topk`, `max` and `min`, in all three qops files.

use super::Check;
use super::json::*;
use qlab::tensor::QTensor;
use serde_json::Value;

pub fn check_for(kind: &str) -> Option<Check> {
    Some(match kind {
        "mean" => mean,
        "sort" => sort,
        "topk" => topk,
        "max" => max,
        "min" => min,
        _ => return None,
    })
}

fn int(v: &Value, what: &str) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{what} is not an integer"))
}

fn flag(v: &Value, what: &str) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| format!("{what} is not a bool"))
}

/// Compares `values` (flat output object) and `indices` (i64 tensor).
fn expect_values_indices(c: &Case, got: (QTensor, Vec<i64>)) -> Outcome {
    let (values, indices) = got;
    expect_flat_qtensor("values", &values, &c.expected["values"])?;
    let want = &c.expected["indices"];
    expect_eq("indices.shape", values.shape().to_vec(), shape(want))?;
    Ok(expect_eq("indices", indices, i64s(want))?)
}

fn mean(c: &Case) -> Outcome {
    let x = qtensor(&c.inputs["x"]);
    let dims: Vec<i64> = c.params["dim"]
        .as_array()
        .ok_or("dim is not a list")?
        .iter()
        .map(|d| int(d, "dim"))
        .collect::<Result<_, _>>()?;
    let got = x
        .mean_dims(&dims, flag(&c.params["keepdim"], "keepdim")?)
        .qlab()?;
    Ok(expect_flat_qtensor("mean", &got, &c.expected)?)
}

/// qlab's sort and topk are PyTorch's stable, sorted variants; the other settings leave the
/// order of ties (or of the top k) to the implementation, so they cannot be checked.
fn require(c: &Case, key: &str) -> Result<(), String> {
    match flag(&c.params[key], key)? {
        true => Ok(()),
        false => Err(format!("{key}=false is not supported by qlab")),
    }
}

fn sort(c: &Case) -> Outcome {
    require(c, "stable")?;
    let x = qtensor(&c.inputs["x"]);
    let got = x
        .sort(
            int(&c.params["dim"], "dim")?,
            flag(&c.params["descending"], "descending")?,
        )
        .qlab()?;
    expect_values_indices(c, got)
}

fn topk(c: &Case) -> Outcome {
    require(c, "sorted")?;
    let x = qtensor(&c.inputs["x"]);
    let k = usize::try_from(int(&c.params["k"], "k")?).qlab()?;
    let got = x
        .topk(
            k,
            int(&c.params["dim"], "dim")?,
            flag(&c.params["largest"], "largest")?,
        )
        .qlab()?;
    expect_values_indices(c, got)
}

fn max(c: &Case) -> Outcome {
    extreme(c, QTensor::max, QTensor::max_dim)
}

fn min(c: &Case) -> Outcome {
    extreme(c, QTensor::min, QTensor::min_dim)
}

type All = fn(&QTensor) -> Result<QTensor, qlab::tensor::TensorError>;
type AlongDim = fn(&QTensor, i64, bool) -> Result<(QTensor, Vec<i64>), qlab::tensor::TensorError>;

/// `torch.max(x)` when `dim` is null, else `torch.max(x, dim, keepdim)`; same for `min`.
fn extreme(c: &Case, all: All, along: AlongDim) -> Outcome {
    let x = qtensor(&c.inputs["x"]);
    match &c.params["dim"] {
        Value::Null => Ok(expect_flat_qtensor("value", &all(&x).qlab()?, &c.expected)?),
        dim => {
            let keepdim = c
                .params
                .get("keepdim")
                .map_or(Ok(false), |k| flag(k, "keepdim"))?;
            expect_values_indices(c, along(&x, int(dim, "dim")?, keepdim).qlab()?)
        }
    }
}

//! `export pytorch`: qlab's converted model as something PyTorch's eager `convert` can rebuild —
//! a JSON of every quantized module's activation and weight qparams under PyTorch's module
//! paths, and a Python module (`apply_qlab.py`, a template kept beside this file and filled in
//! here) whose `apply(prepared)` puts them on a model the user prepared with
//! `torch.ao.quantization.prepare`. The JSON entries are the `export qparams` rows
//! ([`QParamsRow`]) of the converted model, so the two files cannot disagree.
//!
//! ONNX keeps a `FloatFunctional`'s call only as its parent scope (`stage2.0`), not the
//! attribute's name (`stage2.0.cat`): such entries carry `module: null`, the `functional`
//! method and the `scope`, and the script takes the scope's `FloatFunctional` children in order.

use super::{QParamsRow, ReportContext, SCHEMA_VERSION};
use serde::Serialize;

/// The script template; `{{NAME}}` placeholders are filled by [`apply_script`].
const TEMPLATE: &str = include_str!("apply_qlab.py");

/// One tensor's qparams as the script's fixed observer takes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TorchQParams {
    pub dtype: String,
    pub qscheme: String,
    /// One scale (per-tensor) or one per channel, as stored (f64).
    pub scale: Vec<f64>,
    pub zero_point: Vec<i64>,
    /// The per-channel axis (`null` per-tensor).
    pub ch_axis: Option<usize>,
    /// The observer's integer range (`null` when qlab did not observe it here: a loaded model;
    /// the script then takes the dtype's full range, which convert only clamps weights to).
    pub quant_min: Option<i64>,
    pub quant_max: Option<i64>,
}

/// One quantized module of the converted model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TorchModule {
    /// The PyTorch module path (`features.0.0`, `quant`); `null` for a `FloatFunctional`.
    pub module: Option<String>,
    /// qlab's node name.
    pub node: String,
    /// The converted op's kind (`qconv_relu`, `qcat`, …).
    pub op: String,
    /// The `FloatFunctional` method (`add`, `add_relu`, `mul`, `cat`) for functional ops.
    pub functional: Option<&'static str>,
    /// The module path the functional was called in (`""` at the root).
    pub scope: Option<String>,
    /// The output (activation) qparams.
    pub activation: TorchQParams,
    /// The weight's qparams, for modules with weights.
    pub weight: Option<TorchQParams>,
}

/// The JSON `export pytorch` writes beside its script.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TorchQParamsFile {
    pub schema_version: u32,
    /// `"pytorch"`.
    pub kind: &'static str,
    pub model: String,
    /// The engine qlab converted for (the script warns when PyTorch's differs).
    pub engine: String,
    pub context: ReportContext,
    pub modules: Vec<TorchModule>,
}

/// Where one row's functional call sits: its method and scope; `None` for a module.
pub type FunctionalSite = Option<(&'static str, String)>;

impl TorchModule {
    /// The entry for one converted-model row (`None` for a row without output qparams).
    pub fn from_row(r: &QParamsRow, functional: FunctionalSite) -> Option<TorchModule> {
        let activation = TorchQParams {
            dtype: r.dtype.clone()?,
            qscheme: r.qscheme.clone()?,
            scale: vec![r.scale?],
            zero_point: vec![r.zero_point?],
            ch_axis: None,
            quant_min: r.quant_min,
            quant_max: r.quant_max,
        };
        let weight = (!r.weight_scale.is_empty()).then(|| TorchQParams {
            dtype: r.weight_dtype.clone().unwrap_or_default(),
            qscheme: r.weight_qscheme.clone().unwrap_or_default(),
            scale: r.weight_scale.clone(),
            zero_point: r.weight_zero_point.clone(),
            ch_axis: r.weight_ch_axis,
            quant_min: r.weight_quant_min,
            quant_max: r.weight_quant_max,
        });
        let (method, scope) = match functional {
            Some((m, s)) => (Some(m), Some(s)),
            None => (None, None),
        };
        Some(TorchModule {
            module: method.is_none().then(|| r.layer.clone()),
            node: r.layer.clone(),
            op: r.op.clone(),
            functional: method,
            scope,
            activation,
            weight,
        })
    }
}

impl TorchQParamsFile {
    pub fn new(context: ReportContext, modules: Vec<TorchModule>) -> Self {
        TorchQParamsFile {
            schema_version: SCHEMA_VERSION,
            kind: "pytorch",
            model: context.model_file.clone(),
            engine: context.engine.clone(),
            context,
            modules,
        }
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("plain data serializes");
        text.push('\n');
        text
    }
}

/// The Python module for `file` (the JSON), to be saved as `module`.py beside it.
pub fn apply_script(file: &TorchQParamsFile, json_name: &str, module: &str) -> String {
    TEMPLATE
        .replace("{{MODEL}}", &file.model)
        .replace("{{ENGINE}}", &file.engine)
        .replace("{{JSON}}", json_name)
        .replace("{{MODULE}}", module)
        .replace("{{SCHEMA_VERSION}}", &SCHEMA_VERSION.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_placeholders_are_all_filled() {
        let file = TorchQParamsFile {
            schema_version: SCHEMA_VERSION,
            kind: "pytorch",
            model: "m.onnx".into(),
            engine: "qnnpack".into(),
            context: ReportContext::default(),
            modules: Vec::new(),
        };
        let py = apply_script(&file, "a.json", "a");
        assert!(!py.contains("{{"), "{py}");
        assert!(py.contains("with_name(\"a.json\")") && py.contains("def apply(prepared_model"));
        assert!(py.contains("SCHEMA_VERSION = 4"));
    }
}

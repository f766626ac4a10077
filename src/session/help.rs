//! `help` and `help VERB`: the verb list comes from `VERBS` (one line each); a few verbs whose
//! output needs its definitions at hand (the error columns, the `expect` metrics) add a longer
//! paragraph here, so the formulas a user reads in the REPL are the ones the code computes.

use super::command::VERBS;
use super::{Output, SessionError, Table};

/// Extra paragraphs for `help VERB`.
const DETAILS: &[(&str, &str)] = &[
    (
        "errors",
        "columns, pooled over DATA (x float, y dequantized, s the quantization step, n elements):
  sqnr_db     20·log10(‖x‖ / ‖x−y‖)
  mse         Σ(x−y)² / n
  max_abs     max |x−y|
  mean_err    Σ(y−x) / n (bias)
  cosine      Σxy / (‖x‖·‖y‖)
  rmse/scale  sqrt(Σ((x−y)/s)² / n); uniform rounding noise gives 1/√12 ≈ 0.2887
  clip%       100 · #{x outside [(qmin−zp)·s − s/2, (qmax−zp)·s + s/2]} / n, output qparams
  in_clip%    100 · #{x_in outside [(qmin−zp)·s, (qmax−zp)·s]} / #x_in, where x_in are the float
              model's values of the op's quantized operands and s, zp their qparams (taken from
              the float model in both modes; - when the op has no quantized operand)
  saturated   u8×s8 pair sums the engine saturated to int16 (fbgemm's depthwise fast path, and
              every fbgemm GEMM on profile=avx2; never qnnpack or profile=exact), summed over
              DATA: in the quantized model's run (cumulative) or the op's isolated run (isolated)
modes: cumulative compares the quantized model run end to end with the float model; isolated
feeds each quantized op the float model's input, quantized with its input qparams",
    ),
    (
        "expect",
        "metrics:
  accuracy(DATA), correct(DATA)                      the float model on labelled DATA
  quantized_accuracy(DATA), quantized_correct(DATA)  the converted model on labelled DATA
  agreement(DATA)                                    fraction of samples whose top-1 class agrees
  sqnr(DATA,LAYER)                                   cumulative output SQNR (dB) of LAYER
  saturated(DATA,LAYER), saturated(DATA)             int16 pair saturations of LAYER, or of all
                                                     layers, over DATA (cumulative; help errors)
the error table behind sqnr and saturated is computed once per dataset and kept until a command
changes the model, data, qconfig, observers or engine",
    ),
];

/// `help qconfig`'s SPEC grammar, listing the observers and options the parser knows.
fn qconfig_grammar() -> String {
    let observers: Vec<&str> = crate::observer::ALL_KINDS
        .iter()
        .map(|k| k.name())
        .collect();
    let options: Vec<&str> = crate::observer::option_names().collect();
    format!(
        "SPEC is an observer, OBSERVER or OBSERVER(option=value, ...), or a fake-quant around
one, fake_quant(OBSERVER(...)) or fused_fake_quant(OBSERVER(...)); quote a SPEC with spaces.
  observers  {}
  options    {}
Either half alone (qconfig conv1 activation=entropy) keeps the other half the target has now.
  qconfig * preset=qnnpack
  qconfig features.* activation=\"histogram(bins=2048, reduce_range=true)\"
  qconfig type=Linear weight=\"per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)\"",
        observers.join(", "),
        options.join(", ")
    )
}

pub(super) fn help(verb: Option<&str>) -> Result<Output, SessionError> {
    match verb {
        None => Ok(Output::Table {
            title: "verbs (help VERB for one):".into(),
            table: Table {
                headers: vec!["verb".into(), "what it does".into()],
                rows: VERBS
                    .iter()
                    .map(|(v, _, what)| vec![v.to_string(), what.to_string()])
                    .collect(),
            },
        }),
        Some(v) => {
            let (_, usage, what) =
                VERBS
                    .iter()
                    .find(|(name, _, _)| *name == v)
                    .ok_or_else(|| SessionError::UnknownVerb {
                        verb: v.to_string(),
                        known: VERBS
                            .iter()
                            .map(|(v, _, _)| *v)
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
            let mut text = format!("{usage}\n  {what}");
            if let Some((_, more)) = DETAILS.iter().find(|(name, _)| *name == v) {
                text.push_str(&format!("\n{more}"));
            }
            if v == "qconfig" {
                text.push_str(&format!("\n{}", qconfig_grammar()));
            }
            Ok(Output::Text(text))
        }
    }
}

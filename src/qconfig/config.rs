//! `QConfig` / `QConfigDynamic`: how to observe (or fake-quantize) a module's activation and
//! weight, with validation that names the failing field and a one-line text form for the
//! session language, built from the observer and fake-quant spec texts:
//! `activation=histogram(reduce_range=true) weight=per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)`.

use super::{Preset, QConfigError, QuantizerSpec, preset};
use crate::observer::ObserverSpec;
use crate::tensor::DType;
use std::fmt;
use std::str::FromStr;

/// A static or QAT quantization configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct QConfig {
    pub activation: QuantizerSpec,
    pub weight: QuantizerSpec,
}

impl QConfig {
    pub fn new(activation: impl Into<QuantizerSpec>, weight: impl Into<QuantizerSpec>) -> QConfig {
        QConfig {
            activation: activation.into(),
            weight: weight.into(),
        }
    }

    /// Checks both fields; the error names the first failing one.
    pub fn validate(&self) -> Result<(), QConfigError> {
        check_field("activation", &self.activation)?;
        check_field("weight", &self.weight)?;
        if self.activation.observer().qscheme.is_per_channel() {
            return Err(QConfigError::Invalid {
                field: "activation",
                why: "per-channel qschemes are only supported for weights".into(),
            });
        }
        Ok(())
    }

    /// True when the activation is a dynamic placeholder (qparams chosen at run time).
    pub fn is_dynamic(&self) -> bool {
        self.activation.observer().is_dynamic
    }
}

fn check_field(field: &'static str, q: &QuantizerSpec) -> Result<(), QConfigError> {
    let invalid = |why: String| QConfigError::Invalid { field, why };
    q.validate().map_err(|e| invalid(e.to_string()))?;
    if q.observer().dtype == DType::QInt32 {
        return Err(invalid(
            "dtype qint32 cannot be observed for a module (accepted: quint8, qint8, float16, float32)"
                .into(),
        ));
    }
    Ok(())
}

impl fmt::Display for QConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "activation={} weight={}", self.activation, self.weight)
    }
}

/// Splits at whitespace outside parentheses.
fn top_level_items(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, None);
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c.is_whitespace() && depth == 0 => {
                if let Some(s) = start.take() {
                    items.push(&text[s..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        items.push(&text[s..]);
    }
    items
}

impl FromStr for QConfig {
    type Err = QConfigError;

    /// `activation=<spec> weight=<spec>`, or the name of a QConfig preset
    /// (`default_qconfig`, `get_default_qat_qconfig(x86, 1)`). Not validated.
    fn from_str(text: &str) -> Result<QConfig, QConfigError> {
        let fail = |why: String| QConfigError::Parse {
            text: text.to_string(),
            why,
        };
        let items = top_level_items(text.trim());
        if let [single] = items.as_slice()
            && !single.contains('=')
        {
            return match preset(single)? {
                Preset::QConfig(q) => Ok(q),
                other => Err(QConfigError::WrongPresetKind {
                    name: single.to_string(),
                    is: other.kind_name(),
                    wanted: "a qconfig",
                }),
            };
        }
        let (mut activation, mut weight) = (None, None);
        for item in items {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| fail(format!("'{item}' is not key=value")))?;
            let slot = match key {
                "activation" => &mut activation,
                "weight" => &mut weight,
                other => {
                    return Err(fail(format!(
                        "unknown key '{other}' (accepted: activation, weight)"
                    )));
                }
            };
            if slot.is_some() {
                return Err(fail(format!("key '{key}' given twice")));
            }
            *slot = Some(
                value
                    .parse::<QuantizerSpec>()
                    .map_err(|e| fail(format!("{key}: {e}")))?,
            );
        }
        match (activation, weight) {
            (Some(activation), Some(weight)) => Ok(QConfig { activation, weight }),
            (None, _) => Err(fail("missing activation=".into())),
            (_, None) => Err(fail("missing weight=".into())),
        }
    }
}

/// PyTorch's `QConfigDynamic` (1.x; a plain `QConfig` with a dynamic activation in 2.x): only
/// the weight is observed ahead of time, activation qparams are chosen per call.
#[derive(Debug, Clone, PartialEq)]
pub struct QConfigDynamic(QConfig);

impl QConfigDynamic {
    /// A dynamic config for `weight`, with the 2.x dynamic activation placeholder.
    pub fn new(weight: ObserverSpec) -> QConfigDynamic {
        QConfigDynamic(QConfig::new(
            super::presets::default_dynamic_quant_observer(),
            weight,
        ))
    }

    /// The equivalent 2.x `QConfig`.
    pub fn qconfig(&self) -> &QConfig {
        &self.0
    }
}

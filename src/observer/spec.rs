//! `ObserverSpec`: an observer's configuration as a value (text form, defaults, validation).
//!
//! The spec is what the session language, QConfig and the workbench pass around; observers are
//! only ever built from a validated spec, so every PyTorch constructor check lives here once.
//! Defaults follow PyTorch's constructors per kind, and the text form prints only the fields that
//! differ from those defaults, in a fixed order, so equal specs always print the same text.

use super::ObserverError;
use crate::tensor::{DType, QDType, QScheme};
use std::fmt;
use std::str::FromStr;

/// Which observer (or calibrator) a spec builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObserverKind {
    MinMax,
    MovingAverageMinMax,
    PerChannelMinMax,
    MovingAveragePerChannelMinMax,
    Histogram,
    Placeholder,
    Noop,
    Recording,
    /// qlab extension: clip at a percentile of the histogram.
    Percentile,
    /// qlab extension: minimise KL divergence (TensorRT-style entropy calibration).
    Entropy,
    /// qlab extension: sweep clip ranges and minimise the mean squared quantization error.
    Mse,
}

/// Every kind, in the order the parse error lists them.
pub const ALL_KINDS: [ObserverKind; 11] = [
    ObserverKind::MinMax,
    ObserverKind::MovingAverageMinMax,
    ObserverKind::PerChannelMinMax,
    ObserverKind::MovingAveragePerChannelMinMax,
    ObserverKind::Histogram,
    ObserverKind::Placeholder,
    ObserverKind::Noop,
    ObserverKind::Recording,
    ObserverKind::Percentile,
    ObserverKind::Entropy,
    ObserverKind::Mse,
];

/// Largest histogram: bin indices are computed in f32, exact up to 2^24.
pub const MAX_BINS: usize = 1 << 24;
/// Largest re-binning upsample rate (PyTorch has no limit; this keeps re-binning bounded).
pub const MAX_UPSAMPLE: usize = 1 << 12;

/// A spec field that the text form can name, in canonical print order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Dtype,
    Qscheme,
    ReduceRange,
    QuantMin,
    QuantMax,
    Eps,
    AveragingConstant,
    ChAxis,
    Bins,
    UpsampleRate,
    IsDynamic,
    Percentile,
}

const ALL_KEYS: [Key; 12] = [
    Key::Dtype,
    Key::Qscheme,
    Key::ReduceRange,
    Key::QuantMin,
    Key::QuantMax,
    Key::Eps,
    Key::AveragingConstant,
    Key::ChAxis,
    Key::Bins,
    Key::UpsampleRate,
    Key::IsDynamic,
    Key::Percentile,
];

/// The option names a spec's text accepts (`histogram(bins=2048, reduce_range=true)`), in
/// canonical print order.
pub fn option_names() -> impl Iterator<Item = &'static str> {
    ALL_KEYS.iter().map(|k| k.name())
}

impl Key {
    const fn name(self) -> &'static str {
        match self {
            Key::Dtype => "dtype",
            Key::Qscheme => "qscheme",
            Key::ReduceRange => "reduce_range",
            Key::QuantMin => "quant_min",
            Key::QuantMax => "quant_max",
            Key::Eps => "eps",
            Key::AveragingConstant => "averaging_constant",
            Key::ChAxis => "ch_axis",
            Key::Bins => "bins",
            Key::UpsampleRate => "upsample_rate",
            Key::IsDynamic => "is_dynamic",
            Key::Percentile => "p",
        }
    }
}

impl ObserverKind {
    /// The name used in spec text.
    pub const fn name(self) -> &'static str {
        match self {
            ObserverKind::MinMax => "minmax",
            ObserverKind::MovingAverageMinMax => "moving_average_minmax",
            ObserverKind::PerChannelMinMax => "per_channel_minmax",
            ObserverKind::MovingAveragePerChannelMinMax => "moving_average_per_channel_minmax",
            ObserverKind::Histogram => "histogram",
            ObserverKind::Placeholder => "placeholder",
            ObserverKind::Noop => "noop",
            ObserverKind::Recording => "recording",
            ObserverKind::Percentile => "percentile",
            ObserverKind::Entropy => "entropy",
            ObserverKind::Mse => "mse",
        }
    }

    /// True for the kinds that keep one min/max pair per channel.
    pub const fn is_per_channel(self) -> bool {
        matches!(
            self,
            ObserverKind::PerChannelMinMax | ObserverKind::MovingAveragePerChannelMinMax
        )
    }

    /// True for the kinds whose statistics are a histogram (PyTorch's and the qlab calibrators).
    pub const fn uses_histogram(self) -> bool {
        matches!(
            self,
            ObserverKind::Histogram
                | ObserverKind::Percentile
                | ObserverKind::Entropy
                | ObserverKind::Mse
        )
    }

    /// True for the kinds that produce qparams (all but placeholder, noop and recording).
    pub const fn computes_qparams(self) -> bool {
        !matches!(
            self,
            ObserverKind::Placeholder | ObserverKind::Noop | ObserverKind::Recording
        )
    }

    /// The fields this kind reads, which are also the keys its text form accepts.
    fn keys(self) -> &'static [Key] {
        use Key::*;
        // Every range observer reads the range fields first, then its own.
        macro_rules! range_and {
            ($($own:ident),*) => {
                &[Dtype, Qscheme, ReduceRange, QuantMin, QuantMax, Eps, $($own),*]
            };
        }
        match self {
            ObserverKind::MinMax => range_and!(),
            ObserverKind::MovingAverageMinMax => range_and!(AveragingConstant),
            ObserverKind::PerChannelMinMax => range_and!(ChAxis),
            ObserverKind::MovingAveragePerChannelMinMax => range_and!(AveragingConstant, ChAxis),
            ObserverKind::Histogram | ObserverKind::Entropy | ObserverKind::Mse => {
                range_and!(Bins, UpsampleRate)
            }
            ObserverKind::Percentile => range_and!(Bins, UpsampleRate, Percentile),
            ObserverKind::Placeholder => &[Dtype, QuantMin, QuantMax, IsDynamic],
            ObserverKind::Noop | ObserverKind::Recording => &[Dtype],
        }
    }
}

impl fmt::Display for ObserverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A complete observer configuration. Fields a kind does not use are ignored by it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObserverSpec {
    pub kind: ObserverKind,
    pub dtype: DType,
    pub qscheme: QScheme,
    pub reduce_range: bool,
    /// Custom range; both or neither (PyTorch's `has_customized_qrange`).
    pub quant_min: Option<i64>,
    pub quant_max: Option<i64>,
    pub eps: f32,
    pub averaging_constant: f32,
    pub ch_axis: i64,
    pub bins: usize,
    pub upsample_rate: usize,
    pub is_dynamic: bool,
    /// Percentile calibrator: the kept fraction in percent (e.g. 99.99).
    pub percentile: f64,
}

/// The integer range an observer maps onto, after `reduce_range` (NUMERICS §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QRange {
    pub quant_min: i64,
    pub quant_max: i64,
    /// A custom range was given (decides the symmetric quint8 zero point).
    pub customized: bool,
}

/// One builder method per field: `with_FIELD(value)` returns the spec with that field set
/// (PyTorch's observer constructor arguments, one at a time).
macro_rules! setters {
    ($($method:ident: $field:ident: $ty:ty),* $(,)?) => {
        impl ObserverSpec {
            $(
                #[doc = concat!("The same spec with `", stringify!($field), "` set.")]
                pub fn $method(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

setters! {
    with_dtype: dtype: DType,
    with_qscheme: qscheme: QScheme,
    with_reduce_range: reduce_range: bool,
    with_eps: eps: f32,
    with_averaging_constant: averaging_constant: f32,
    with_ch_axis: ch_axis: i64,
    with_bins: bins: usize,
    with_upsample_rate: upsample_rate: usize,
    with_is_dynamic: is_dynamic: bool,
    with_percentile: percentile: f64,
}

impl ObserverSpec {
    /// The spec PyTorch's constructor of `kind` produces with no arguments.
    pub fn new(kind: ObserverKind) -> ObserverSpec {
        let (dtype, qscheme) = match kind {
            k if k.is_per_channel() => (DType::QUInt8, QScheme::PerChannelAffine),
            ObserverKind::Placeholder => (DType::Float32, QScheme::PerTensorAffine),
            ObserverKind::Noop => (DType::Float16, QScheme::PerTensorAffine),
            _ => (DType::QUInt8, QScheme::PerTensorAffine),
        };
        ObserverSpec {
            kind,
            dtype,
            qscheme,
            reduce_range: false,
            quant_min: None,
            quant_max: None,
            eps: f32::EPSILON,
            averaging_constant: 0.01,
            ch_axis: 0,
            bins: 2048,
            upsample_rate: 16,
            is_dynamic: false,
            percentile: 99.99,
        }
    }

    /// A custom integer range (PyTorch's `quant_min` / `quant_max` arguments).
    pub fn with_quant_range(mut self, quant_min: i64, quant_max: i64) -> Self {
        self.quant_min = Some(quant_min);
        self.quant_max = Some(quant_max);
        self
    }

    /// The same statistics read by another kind (for re-deriving qparams from stored stats).
    pub fn with_kind(mut self, kind: ObserverKind) -> Self {
        self.kind = kind;
        self
    }

    /// The same spec with every field its kind does not read reset to the kind's default: the
    /// value its text form stands for (`parse(spec.to_string()) == spec.normalized()`).
    pub fn normalized(&self) -> ObserverSpec {
        let mut out = ObserverSpec::new(self.kind);
        for &key in self.kind.keys() {
            out.copy_field(self, key);
        }
        out
    }

    fn copy_field(&mut self, from: &ObserverSpec, key: Key) {
        match key {
            Key::Dtype => self.dtype = from.dtype,
            Key::Qscheme => self.qscheme = from.qscheme,
            Key::ReduceRange => self.reduce_range = from.reduce_range,
            Key::QuantMin => self.quant_min = from.quant_min,
            Key::QuantMax => self.quant_max = from.quant_max,
            Key::Eps => self.eps = from.eps,
            Key::AveragingConstant => self.averaging_constant = from.averaging_constant,
            Key::ChAxis => self.ch_axis = from.ch_axis,
            Key::Bins => self.bins = from.bins,
            Key::UpsampleRate => self.upsample_rate = from.upsample_rate,
            Key::IsDynamic => self.is_dynamic = from.is_dynamic,
            Key::Percentile => self.percentile = from.percentile,
        }
    }

    /// True when a custom range was given.
    pub fn has_customized_qrange(&self) -> bool {
        self.quant_min.is_some() && self.quant_max.is_some()
    }

    /// The quantized dtype, or an error naming `dtype` when it is a float type.
    pub fn qdtype(&self) -> Result<QDType, ObserverError> {
        self.dtype.quantized().ok_or_else(|| {
            invalid(format!(
                "dtype {} has no integer range for {}",
                self.dtype, self.kind
            ))
        })
    }

    /// The effective integer range (NUMERICS §2.1), checking every constructor rule on the way.
    pub fn quant_range(&self) -> Result<QRange, ObserverError> {
        let dtype = self.qdtype()?;
        if self.qscheme.is_symmetric() && dtype == QDType::QUInt8 && self.reduce_range {
            return Err(invalid(
                "reduce_range=true is not supported with a symmetric qscheme and dtype quint8"
                    .into(),
            ));
        }
        let (lo, hi, customized) = match (self.quant_min, self.quant_max) {
            (None, None) => (dtype.qmin(), dtype.qmax(), false),
            (Some(lo), Some(hi)) => {
                let bad = |why| {
                    Err(ObserverError::InvalidRange {
                        quant_min: lo,
                        quant_max: hi,
                        why,
                    })
                };
                if lo >= hi {
                    return bad("quant_min must be less than quant_max");
                }
                if lo > 0 || hi < 0 {
                    return bad("the range must contain zero (quant_min <= 0 <= quant_max)");
                }
                if lo < dtype.qmin() || hi > dtype.qmax() {
                    return bad("the range does not fit the dtype");
                }
                (lo, hi, true)
            }
            (Some(_), None) => return Err(invalid("quant_min was given without quant_max".into())),
            (None, Some(_)) => return Err(invalid("quant_max was given without quant_min".into())),
        };
        let (lo, hi) = if self.reduce_range {
            (lo.div_euclid(2), hi.div_euclid(2))
        } else {
            (lo, hi)
        };
        Ok(QRange {
            quant_min: lo,
            quant_max: hi,
            customized,
        })
    }

    /// Checks the whole spec as the kind's PyTorch constructor would (and a little more).
    pub fn validate(&self) -> Result<(), ObserverError> {
        let kind = self.kind;
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid(format!(
                "eps must be finite and > 0, got {}",
                self.eps
            )));
        }
        if !kind.computes_qparams() {
            // Placeholders only carry a dtype and an optional range; check the range if given.
            if self.dtype.quantized().is_some() && self.has_customized_qrange() {
                self.quant_range()?;
            }
            return Ok(());
        }
        let dtype = self.qdtype()?;
        if kind.is_per_channel() != self.qscheme.is_per_channel() {
            return Err(invalid(format!(
                "qscheme {} does not fit observer {}",
                self.qscheme, kind
            )));
        }
        if kind.uses_histogram() {
            if dtype.bits() != 8 {
                return Err(invalid(format!(
                    "dtype {dtype} is not supported by {kind} (8-bit only)"
                )));
            }
            // Bin indices are computed in f32, exact up to 2^24.
            if !(1..=MAX_BINS).contains(&self.bins) {
                return Err(invalid(format!(
                    "bins must be in 1..={MAX_BINS}, got {}",
                    self.bins
                )));
            }
            if !(1..=MAX_UPSAMPLE).contains(&self.upsample_rate) {
                return Err(invalid(format!(
                    "upsample_rate must be in 1..={MAX_UPSAMPLE}, got {}",
                    self.upsample_rate
                )));
            }
        }
        if matches!(
            kind,
            ObserverKind::MovingAverageMinMax | ObserverKind::MovingAveragePerChannelMinMax
        ) && !(0.0..=1.0).contains(&self.averaging_constant)
        {
            return Err(invalid(format!(
                "averaging_constant must be in [0, 1], got {}",
                self.averaging_constant
            )));
        }
        if kind == ObserverKind::Percentile && !(self.percentile > 0.0 && self.percentile <= 100.0)
        {
            return Err(invalid(format!(
                "p must be in (0, 100], got {}",
                self.percentile
            )));
        }
        self.quant_range().map(|_| ())
    }

    /// Validates and builds the observer.
    pub fn build(&self) -> Result<Box<dyn super::Observer>, ObserverError> {
        super::build(self)
    }

    fn value_text(&self, key: Key) -> String {
        match key {
            Key::Dtype => self.dtype.to_string(),
            Key::Qscheme => self.qscheme.to_string(),
            Key::ReduceRange => self.reduce_range.to_string(),
            Key::QuantMin => self
                .quant_min
                .map_or_else(|| "none".into(), |v| v.to_string()),
            Key::QuantMax => self
                .quant_max
                .map_or_else(|| "none".into(), |v| v.to_string()),
            Key::Eps => self.eps.to_string(),
            Key::AveragingConstant => self.averaging_constant.to_string(),
            Key::ChAxis => self.ch_axis.to_string(),
            Key::Bins => self.bins.to_string(),
            Key::UpsampleRate => self.upsample_rate.to_string(),
            Key::IsDynamic => self.is_dynamic.to_string(),
            Key::Percentile => self.percentile.to_string(),
        }
    }

    fn set(&mut self, key: Key, v: &str) -> Result<(), String> {
        fn num<T: FromStr>(v: &str, what: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("'{v}' is not {what}"))
        }
        fn flag(v: &str) -> Result<bool, String> {
            match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("'{v}' is not a boolean (accepted: true, false)")),
            }
        }
        let opt_int = |v: &str| {
            if v == "none" {
                Ok(None)
            } else {
                num(v, "an integer").map(Some)
            }
        };
        match key {
            Key::Dtype => {
                self.dtype = DType::parse(v).ok_or_else(|| {
                    format!(
                        "unknown dtype '{v}' (accepted: quint8, qint8, qint32, float16, float32)"
                    )
                })?
            }
            Key::Qscheme => {
                self.qscheme = QScheme::parse(v).ok_or_else(|| {
                    format!(
                        "unknown qscheme '{v}' (accepted: per_tensor_affine, per_tensor_symmetric, \
                         per_channel_affine, per_channel_symmetric)"
                    )
                })?
            }
            Key::ReduceRange => self.reduce_range = flag(v)?,
            Key::QuantMin => self.quant_min = opt_int(v)?,
            Key::QuantMax => self.quant_max = opt_int(v)?,
            Key::Eps => self.eps = num(v, "a number")?,
            Key::AveragingConstant => self.averaging_constant = num(v, "a number")?,
            Key::ChAxis => self.ch_axis = num(v, "an integer")?,
            Key::Bins => self.bins = num(v, "a non-negative integer")?,
            Key::UpsampleRate => self.upsample_rate = num(v, "a non-negative integer")?,
            Key::IsDynamic => self.is_dynamic = flag(v)?,
            Key::Percentile => self.percentile = num(v, "a number")?,
        }
        Ok(())
    }
}

fn invalid(msg: String) -> ObserverError {
    ObserverError::InvalidConfig(msg)
}

impl fmt::Display for ObserverSpec {
    /// `kind(key=value, ...)` with only the fields that differ from the kind's defaults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = ObserverSpec::new(self.kind);
        let fields: Vec<String> = self
            .kind
            .keys()
            .iter()
            .filter(|&&k| self.value_text(k) != default.value_text(k))
            .map(|&k| format!("{}={}", k.name(), self.value_text(k)))
            .collect();
        if fields.is_empty() {
            f.write_str(self.kind.name())
        } else {
            write!(f, "{}({})", self.kind.name(), fields.join(", "))
        }
    }
}

impl FromStr for ObserverSpec {
    type Err = ObserverError;

    /// Parses the text form; the result is not validated (see [`ObserverSpec::validate`]).
    fn from_str(text: &str) -> Result<ObserverSpec, ObserverError> {
        let fail = |why: String| ObserverError::Parse {
            text: text.to_string(),
            why,
        };
        let t = text.trim();
        let (name, args) = match t.find('(') {
            Some(open) => {
                let inner = t[open + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| fail("missing closing ')'".into()))?;
                (t[..open].trim(), Some(inner))
            }
            None => (t, None),
        };
        let kind = ALL_KINDS
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL_KINDS.iter().map(|k| k.name()).collect();
                fail(format!(
                    "unknown observer '{name}' (accepted: {})",
                    names.join(", ")
                ))
            })?;
        let mut spec = ObserverSpec::new(kind);
        let Some(args) = args else { return Ok(spec) };
        let accepted = || {
            kind.keys()
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut seen = Vec::new();
        for item in args.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| fail(format!("'{item}' is not key=value")))?;
            let (k, v) = (k.trim(), v.trim());
            let key = ALL_KEYS
                .into_iter()
                .find(|key| key.name() == k && kind.keys().contains(key))
                .ok_or_else(|| {
                    fail(format!(
                        "unknown key '{k}' for {kind} (accepted: {})",
                        accepted()
                    ))
                })?;
            if seen.contains(&key) {
                return Err(fail(format!("key '{k}' given twice")));
            }
            seen.push(key);
            spec.set(key, v)
                .map_err(|why| fail(format!("{k}: {why}")))?;
        }
        Ok(spec)
    }
}

//! PyTorch 2.x's named observer, fake-quant and QConfig presets (NUMERICS §4.1), and the
//! backend defaults `get_default_qconfig` / `get_default_qat_qconfig`.
//!
//! Each preset is written the way PyTorch writes it (`with_args` keywords), not as effective
//! values, so `reduce_range` halving and customized-range flags come out exactly as in PyTorch;
//! the golden fake-quant cases compare the effective values with what PyTorch recorded.

use super::{QConfig, QConfigError, QuantizerSpec};
use crate::fake_quant::FakeQuantizeSpec;
use crate::observer::{ObserverKind, ObserverSpec};
use crate::tensor::{DType, QScheme};

/// The eps of the restricted `-127..127` presets: 2^-12.
const EPS_2_POW_MINUS_12: f32 = 1.0 / 4096.0;

/// A named preset: an observer, a fake-quant or a whole QConfig.
#[derive(Debug, Clone, PartialEq)]
pub enum Preset {
    Observer(ObserverSpec),
    FakeQuantize(FakeQuantizeSpec),
    QConfig(QConfig),
}

impl Preset {
    /// "an observer", "a fake-quant" or "a qconfig" (for messages).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Preset::Observer(_) => "an observer",
            Preset::FakeQuantize(_) => "a fake-quant",
            Preset::QConfig(_) => "a qconfig",
        }
    }

    /// The preset as a QConfig field, when it is one.
    pub fn into_quantizer(self) -> Option<QuantizerSpec> {
        match self {
            Preset::Observer(o) => Some(o.into()),
            Preset::FakeQuantize(f) => Some(f.into()),
            Preset::QConfig(_) => None,
        }
    }
}

fn obs(kind: ObserverKind) -> ObserverSpec {
    ObserverSpec::new(kind)
}

fn qint8_symmetric(kind: ObserverKind) -> ObserverSpec {
    let scheme = if kind.is_per_channel() {
        QScheme::PerChannelSymmetric
    } else {
        QScheme::PerTensorSymmetric
    };
    obs(kind).with_dtype(DType::QInt8).with_qscheme(scheme)
}

/// `MinMaxObserver.with_args(quant_min=0, quant_max=127)`.
pub fn default_observer() -> ObserverSpec {
    obs(ObserverKind::MinMax).with_quant_range(0, 127)
}

/// `MinMaxObserver.with_args(dtype=qint8, qscheme=per_tensor_symmetric)`.
pub fn default_weight_observer() -> ObserverSpec {
    qint8_symmetric(ObserverKind::MinMax)
}

/// `PerChannelMinMaxObserver.with_args(dtype=qint8, qscheme=per_channel_symmetric)`.
pub fn default_per_channel_weight_observer() -> ObserverSpec {
    qint8_symmetric(ObserverKind::PerChannelMinMax)
}

/// `HistogramObserver.with_args(quant_min=0, quant_max=127)`.
pub fn default_histogram_observer() -> ObserverSpec {
    obs(ObserverKind::Histogram).with_quant_range(0, 127)
}

/// 2.x: `PlaceholderObserver.with_args(dtype=quint8, quant_min=0, quant_max=255, is_dynamic=True)`
/// (1.5's MinMaxDynamicQuantObserver is gone: dynamic ops choose qparams themselves, §7).
pub fn default_dynamic_quant_observer() -> ObserverSpec {
    obs(ObserverKind::Placeholder)
        .with_dtype(DType::QUInt8)
        .with_quant_range(0, 255)
        .with_is_dynamic(true)
}

/// qint8 symmetric on `-127..127` with eps 2^-12 (XNNPACK-oriented).
pub fn weight_observer_range_neg_127_to_127() -> ObserverSpec {
    qint8_symmetric(ObserverKind::MinMax)
        .with_quant_range(-127, 127)
        .with_eps(EPS_2_POW_MINUS_12)
}

/// The per-channel twin of [`weight_observer_range_neg_127_to_127`].
pub fn per_channel_weight_observer_range_neg_127_to_127() -> ObserverSpec {
    qint8_symmetric(ObserverKind::PerChannelMinMax)
        .with_quant_range(-127, 127)
        .with_eps(EPS_2_POW_MINUS_12)
}

/// The activation fake-quant observer: MovingAverageMinMax, quint8, 0..255 (+ reduce_range).
fn act_moving_average(reduce_range: bool) -> ObserverSpec {
    obs(ObserverKind::MovingAverageMinMax)
        .with_quant_range(0, 255)
        .with_reduce_range(reduce_range)
}

/// The weight fake-quant observer: moving-average qint8 symmetric on -128..127.
fn wt_moving_average(per_channel: bool) -> ObserverSpec {
    let kind = if per_channel {
        ObserverKind::MovingAveragePerChannelMinMax
    } else {
        ObserverKind::MovingAverageMinMax
    };
    qint8_symmetric(kind).with_quant_range(-128, 127)
}

/// `FakeQuantize(MovingAverageMinMaxObserver, quant_min=0, quant_max=255, reduce_range=True)`.
pub fn default_fake_quant() -> FakeQuantizeSpec {
    FakeQuantizeSpec::plain(act_moving_average(true))
}

/// `FakeQuantize(MovingAverageMinMaxObserver, -128..127, qint8, per_tensor_symmetric)`.
pub fn default_weight_fake_quant() -> FakeQuantizeSpec {
    FakeQuantizeSpec::plain(wt_moving_average(false))
}

/// `FakeQuantize(MovingAveragePerChannelMinMaxObserver, -128..127, qint8, per_channel_symmetric, ch_axis=0)`.
pub fn default_per_channel_weight_fake_quant() -> FakeQuantizeSpec {
    FakeQuantizeSpec::plain(wt_moving_average(true))
}

/// `FakeQuantize(HistogramObserver, quant_min=0, quant_max=255, reduce_range=True)`.
pub fn default_histogram_fake_quant() -> FakeQuantizeSpec {
    FakeQuantizeSpec::plain(
        obs(ObserverKind::Histogram)
            .with_quant_range(0, 255)
            .with_reduce_range(true),
    )
}

/// `FusedMovingAvgObsFakeQuantize(MovingAverageMinMaxObserver, quant_min=0, quant_max=255)`.
pub fn default_fused_act_fake_quant() -> FakeQuantizeSpec {
    FakeQuantizeSpec::fused(act_moving_average(false))
}

/// The fused per-tensor weight fake-quant (qint8, per_tensor_symmetric, -128..127).
pub fn default_fused_wt_fake_quant() -> FakeQuantizeSpec {
    FakeQuantizeSpec::fused(wt_moving_average(false))
}

/// The fused per-channel weight fake-quant (qint8, per_channel_symmetric, -128..127).
pub fn default_fused_per_channel_wt_fake_quant() -> FakeQuantizeSpec {
    FakeQuantizeSpec::fused(wt_moving_average(true))
}

/// `QConfig(default_observer, default_weight_observer)`.
pub fn default_qconfig() -> QConfig {
    QConfig::new(default_observer(), default_weight_observer())
}

/// `QConfig(default_observer, default_per_channel_weight_observer)`.
pub fn default_per_channel_qconfig() -> QConfig {
    QConfig::new(default_observer(), default_per_channel_weight_observer())
}

/// `QConfig(default_fake_quant, default_weight_fake_quant)`.
pub fn default_qat_qconfig() -> QConfig {
    QConfig::new(default_fake_quant(), default_weight_fake_quant())
}

/// `QConfig(default_fused_act_fake_quant, default_fused_wt_fake_quant)`.
pub fn default_qat_qconfig_v2() -> QConfig {
    QConfig::new(
        default_fused_act_fake_quant(),
        default_fused_wt_fake_quant(),
    )
}

/// `QConfig(default_dynamic_quant_observer, default_weight_observer)`.
pub fn default_dynamic_qconfig() -> QConfig {
    QConfig::new(default_dynamic_quant_observer(), default_weight_observer())
}

/// `QConfig(default_dynamic_quant_observer, default_per_channel_weight_observer)`.
pub fn per_channel_dynamic_qconfig() -> QConfig {
    QConfig::new(
        default_dynamic_quant_observer(),
        default_per_channel_weight_observer(),
    )
}

/// `QConfig(PlaceholderObserver(float16, is_dynamic=True), PlaceholderObserver(float16))`.
pub fn float16_dynamic_qconfig() -> QConfig {
    let fp16 = obs(ObserverKind::Placeholder).with_dtype(DType::Float16);
    QConfig::new(fp16.clone().with_is_dynamic(true), fp16)
}

/// `QConfig(PlaceholderObserver(float16), PlaceholderObserver(float16))`.
pub fn float16_static_qconfig() -> QConfig {
    let fp16 = obs(ObserverKind::Placeholder).with_dtype(DType::Float16);
    QConfig::new(fp16.clone(), fp16)
}

/// The quantized engines PyTorch's backend defaults know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Fbgemm,
    X86,
    Qnnpack,
    Onednn,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Fbgemm,
        Backend::X86,
        Backend::Qnnpack,
        Backend::Onednn,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Backend::Fbgemm => "fbgemm",
            Backend::X86 => "x86",
            Backend::Qnnpack => "qnnpack",
            Backend::Onednn => "onednn",
        }
    }

    /// Parses a backend name; the error lists the accepted ones.
    pub fn parse(name: &str) -> Result<Backend, QConfigError> {
        let name = name.trim().trim_matches(|c| c == '\'' || c == '"');
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| QConfigError::UnknownBackend {
                name: name.to_string(),
                accepted: Backend::ALL.map(Backend::name).join(", "),
            })
    }

    /// fbgemm and x86 reduce the activation range (int16 saturation, NUMERICS §8).
    const fn reduces_range(self) -> bool {
        matches!(self, Backend::Fbgemm | Backend::X86)
    }
}

/// `get_default_qconfig(backend)` (version 0, the only one PyTorch has).
pub fn get_default_qconfig(backend: &str) -> Result<QConfig, QConfigError> {
    let backend = Backend::parse(backend)?;
    let activation = obs(ObserverKind::Histogram).with_reduce_range(backend.reduces_range());
    let weight = match backend {
        Backend::Qnnpack => default_weight_observer(),
        _ => default_per_channel_weight_observer(),
    };
    Ok(QConfig::new(activation, weight))
}

/// `get_default_qat_qconfig(backend, version)`: version 0 uses plain `FakeQuantize`, version 1
/// (PyTorch's default) the fused moving-average fake-quant.
pub fn get_default_qat_qconfig(backend: &str, version: i64) -> Result<QConfig, QConfigError> {
    let backend = Backend::parse(backend)?;
    let wrap = match version {
        0 => FakeQuantizeSpec::plain,
        1 => FakeQuantizeSpec::fused,
        _ => return Err(QConfigError::UnsupportedVersion { version }),
    };
    let activation = wrap(act_moving_average(backend.reduces_range()));
    let weight = wrap(wt_moving_average(backend != Backend::Qnnpack));
    Ok(QConfig::new(activation, weight))
}

/// Builds one preset.
type MakePreset = fn() -> Preset;

/// Every named preset, in the order the unknown-name error lists them.
const PRESETS: [(&str, MakePreset); 26] = [
    ("default_observer", || Preset::Observer(default_observer())),
    ("default_weight_observer", || {
        Preset::Observer(default_weight_observer())
    }),
    ("default_per_channel_weight_observer", || {
        Preset::Observer(default_per_channel_weight_observer())
    }),
    ("default_histogram_observer", || {
        Preset::Observer(default_histogram_observer())
    }),
    ("default_dynamic_quant_observer", || {
        Preset::Observer(default_dynamic_quant_observer())
    }),
    ("default_placeholder_observer", || {
        Preset::Observer(obs(ObserverKind::Placeholder))
    }),
    ("default_debug_observer", || {
        Preset::Observer(obs(ObserverKind::Recording))
    }),
    ("weight_observer_range_neg_127_to_127", || {
        Preset::Observer(weight_observer_range_neg_127_to_127())
    }),
    ("per_channel_weight_observer_range_neg_127_to_127", || {
        Preset::Observer(per_channel_weight_observer_range_neg_127_to_127())
    }),
    ("default_fake_quant", || {
        Preset::FakeQuantize(default_fake_quant())
    }),
    ("default_weight_fake_quant", || {
        Preset::FakeQuantize(default_weight_fake_quant())
    }),
    ("default_per_channel_weight_fake_quant", || {
        Preset::FakeQuantize(default_per_channel_weight_fake_quant())
    }),
    ("default_histogram_fake_quant", || {
        Preset::FakeQuantize(default_histogram_fake_quant())
    }),
    ("default_fused_act_fake_quant", || {
        Preset::FakeQuantize(default_fused_act_fake_quant())
    }),
    ("default_fused_wt_fake_quant", || {
        Preset::FakeQuantize(default_fused_wt_fake_quant())
    }),
    ("default_fused_per_channel_wt_fake_quant", || {
        Preset::FakeQuantize(default_fused_per_channel_wt_fake_quant())
    }),
    ("fused_wt_fake_quant_range_neg_127_to_127", || {
        Preset::FakeQuantize(FakeQuantizeSpec::fused(
            weight_observer_range_neg_127_to_127().with_kind(ObserverKind::MovingAverageMinMax),
        ))
    }),
    (
        "fused_per_channel_wt_fake_quant_range_neg_127_to_127",
        || {
            Preset::FakeQuantize(FakeQuantizeSpec::fused(
                per_channel_weight_observer_range_neg_127_to_127()
                    .with_kind(ObserverKind::MovingAveragePerChannelMinMax),
            ))
        },
    ),
    ("default_qconfig", || Preset::QConfig(default_qconfig())),
    ("default_per_channel_qconfig", || {
        Preset::QConfig(default_per_channel_qconfig())
    }),
    ("default_qat_qconfig", || {
        Preset::QConfig(default_qat_qconfig())
    }),
    ("default_qat_qconfig_v2", || {
        Preset::QConfig(default_qat_qconfig_v2())
    }),
    ("default_dynamic_qconfig", || {
        Preset::QConfig(default_dynamic_qconfig())
    }),
    ("per_channel_dynamic_qconfig", || {
        Preset::QConfig(per_channel_dynamic_qconfig())
    }),
    ("float16_dynamic_qconfig", || {
        Preset::QConfig(float16_dynamic_qconfig())
    }),
    ("float16_static_qconfig", || {
        Preset::QConfig(float16_static_qconfig())
    }),
];

/// The names [`preset`] accepts (besides the backend calls).
pub fn preset_names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(n, _)| *n)
}

/// Looks a preset up by name. Also accepts the backend calls `get_default_qconfig(<backend>)` and
/// `get_default_qat_qconfig(<backend>[, <version>])` (version defaults to 1, as in PyTorch).
pub fn preset(name: &str) -> Result<Preset, QConfigError> {
    let name = name.trim();
    if let Some(args) = call_args(name, "get_default_qconfig") {
        return Ok(Preset::QConfig(get_default_qconfig(args)?));
    }
    if let Some(args) = call_args(name, "get_default_qat_qconfig") {
        let (backend, version) = args.split_once(',').unwrap_or((args, "1"));
        let version = version.trim().trim_start_matches("version=").trim();
        let version = version.parse().map_err(|_| QConfigError::Parse {
            text: name.to_string(),
            why: format!("version '{version}' is not an integer"),
        })?;
        return Ok(Preset::QConfig(get_default_qat_qconfig(backend, version)?));
    }
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, make)| make())
        .ok_or_else(|| QConfigError::UnknownPreset {
            name: name.to_string(),
            accepted: preset_names()
                .chain([
                    "get_default_qconfig(<backend>)",
                    "get_default_qat_qconfig(<backend>, <version>)",
                ])
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The text between the parentheses of `func(...)`, if `text` is a call of `func`.
fn call_args<'a>(text: &'a str, func: &str) -> Option<&'a str> {
    text.strip_prefix(func)?
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')
}

//! Quantized dtypes, the wider dtype set observers speak about, and quantization schemes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The integer storage types of a quantized tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QDType {
    QUInt8,
    QInt8,
    QInt32,
}

impl QDType {
    /// Smallest representable integer.
    pub const fn qmin(self) -> i64 {
        match self {
            QDType::QUInt8 => 0,
            QDType::QInt8 => -128,
            QDType::QInt32 => i32::MIN as i64,
        }
    }

    /// Largest representable integer.
    pub const fn qmax(self) -> i64 {
        match self {
            QDType::QUInt8 => 255,
            QDType::QInt8 => 127,
            QDType::QInt32 => i32::MAX as i64,
        }
    }

    /// Storage width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            QDType::QUInt8 | QDType::QInt8 => 8,
            QDType::QInt32 => 32,
        }
    }

    /// PyTorch's name (`quint8`, `qint8`, `qint32`).
    pub const fn name(self) -> &'static str {
        match self {
            QDType::QUInt8 => "quint8",
            QDType::QInt8 => "qint8",
            QDType::QInt32 => "qint32",
        }
    }

    /// Parses PyTorch's name, with or without a `torch.` prefix.
    pub fn parse(s: &str) -> Option<QDType> {
        match s.trim().trim_start_matches("torch.") {
            "quint8" => Some(QDType::QUInt8),
            "qint8" => Some(QDType::QInt8),
            "qint32" => Some(QDType::QInt32),
            _ => None,
        }
    }
}

impl fmt::Display for QDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The dtypes an observer or qconfig may name: the quantized ones plus float16 (dynamic weights)
/// and float32 (keep in float).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    QUInt8,
    QInt8,
    QInt32,
    Float16,
    Float32,
}

impl DType {
    /// The quantized storage type, if this dtype is one.
    pub const fn quantized(self) -> Option<QDType> {
        match self {
            DType::QUInt8 => Some(QDType::QUInt8),
            DType::QInt8 => Some(QDType::QInt8),
            DType::QInt32 => Some(QDType::QInt32),
            DType::Float16 | DType::Float32 => None,
        }
    }

    /// PyTorch's name.
    pub const fn name(self) -> &'static str {
        match self {
            DType::QUInt8 => "quint8",
            DType::QInt8 => "qint8",
            DType::QInt32 => "qint32",
            DType::Float16 => "float16",
            DType::Float32 => "float32",
        }
    }

    /// Parses PyTorch's name (`float16` also as `half`/`f16`, `float32` as `float`/`f32`).
    pub fn parse(s: &str) -> Option<DType> {
        let s = s.trim().trim_start_matches("torch.");
        if let Some(q) = QDType::parse(s) {
            return Some(q.into());
        }
        match s {
            "float16" | "half" | "f16" => Some(DType::Float16),
            "float32" | "float" | "f32" => Some(DType::Float32),
            _ => None,
        }
    }
}

impl From<QDType> for DType {
    fn from(q: QDType) -> DType {
        match q {
            QDType::QUInt8 => DType::QUInt8,
            QDType::QInt8 => DType::QInt8,
            QDType::QInt32 => DType::QInt32,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How qparams map floats to integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QScheme {
    PerTensorAffine,
    PerTensorSymmetric,
    PerChannelAffine,
    PerChannelSymmetric,
}

impl QScheme {
    /// True for the per-channel schemes.
    pub const fn is_per_channel(self) -> bool {
        matches!(
            self,
            QScheme::PerChannelAffine | QScheme::PerChannelSymmetric
        )
    }

    /// True for the symmetric schemes.
    pub const fn is_symmetric(self) -> bool {
        matches!(
            self,
            QScheme::PerTensorSymmetric | QScheme::PerChannelSymmetric
        )
    }

    /// PyTorch's name (`per_tensor_affine`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            QScheme::PerTensorAffine => "per_tensor_affine",
            QScheme::PerTensorSymmetric => "per_tensor_symmetric",
            QScheme::PerChannelAffine => "per_channel_affine",
            QScheme::PerChannelSymmetric => "per_channel_symmetric",
        }
    }

    /// Parses PyTorch's name, with or without a `torch.` prefix.
    pub fn parse(s: &str) -> Option<QScheme> {
        match s.trim().trim_start_matches("torch.") {
            "per_tensor_affine" => Some(QScheme::PerTensorAffine),
            "per_tensor_symmetric" => Some(QScheme::PerTensorSymmetric),
            "per_channel_affine" => Some(QScheme::PerChannelAffine),
            "per_channel_symmetric" => Some(QScheme::PerChannelSymmetric),
            _ => None,
        }
    }
}

impl fmt::Display for QScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

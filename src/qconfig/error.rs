//! The typed errors of the qconfig layer.

use thiserror::Error;

/// Everything that can go wrong looking up, parsing or validating a QConfig.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QConfigError {
    /// A preset name qlab does not know.
    #[error("unknown preset '{name}' (accepted: {accepted})")]
    UnknownPreset { name: String, accepted: String },
    /// A backend name qlab does not know.
    #[error("unknown backend '{name}' (accepted: {accepted})")]
    UnknownBackend { name: String, accepted: String },
    /// A `get_default_qat_qconfig` version other than 0 or 1.
    #[error("unsupported qconfig version {version} (accepted: 0, 1)")]
    UnsupportedVersion { version: i64 },
    /// A preset that exists but is not the kind the caller asked for (e.g. an observer where a
    /// QConfig is needed).
    #[error("preset '{name}' is {is}, not {wanted}")]
    WrongPresetKind {
        name: String,
        is: &'static str,
        wanted: &'static str,
    },
    /// A QConfig field that cannot work; `field` is `activation` or `weight`.
    #[error("invalid qconfig {field}: {why}")]
    Invalid { field: &'static str, why: String },
    /// QConfig text that does not parse.
    #[error("cannot parse qconfig '{text}': {why}")]
    Parse { text: String, why: String },
}

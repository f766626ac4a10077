//! The context every report carries (`report::ReportContext`): which qlab, engine and tier,
//! which model file and datasets (by content hash, so a renamed copy is recognised and an
//! edited one is not), the accuracies on the report's data, and each layer's qconfig.

use super::{SessionError, Workbench};
use crate::graph::Value;
use crate::import::Dataset;
use crate::report::{DatasetFingerprint, ReportContext};
use sha2::{Digest, Sha256};
use std::path::Path;

/// SHA-256 of a model as stored: the file, or a native model's `graph.json` then its weights.
pub(super) fn model_sha256(path: &Path) -> Result<String, SessionError> {
    let mut hash = Sha256::new();
    let files = if path.is_dir() {
        vec![path.join("graph.json"), path.join("weights.safetensors")]
    } else {
        vec![path.to_path_buf()]
    };
    for file in files {
        let bytes = crate::fsutil::read_bounded(&file).map_err(|source| SessionError::Io {
            path: file.display().to_string(),
            source,
        })?;
        hash.update(&bytes);
    }
    Ok(hex(hash))
}

fn hex(hash: Sha256) -> String {
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A dataset's size and the SHA-256 of its inputs' little-endian bytes, then its labels'.
fn fingerprint(d: &Dataset) -> DatasetFingerprint {
    let mut hash = Sha256::new();
    match &d.inputs {
        Value::F32(a) => a.iter().for_each(|v| hash.update(v.to_le_bytes())),
        Value::I64(a) => a.iter().for_each(|v| hash.update(v.to_le_bytes())),
    }
    for label in d.labels.iter().flatten() {
        hash.update(label.to_le_bytes());
    }
    DatasetFingerprint {
        name: d.name.clone(),
        samples: d.len(),
        shape: d.inputs.shape().to_vec(),
        sha256: hex(hash),
    }
}

impl Workbench {
    /// The context of a report on `data` (`None`: a report that runs no data, `export weights`)
    /// about the converted model, or, before `convert`, about the numerics `convert` would
    /// target (no quantized accuracy then).
    pub(super) fn report_context(
        &mut self,
        data: Option<&str>,
    ) -> Result<ReportContext, SessionError> {
        let (model, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        let model = model.clone();
        let (numerics, layers) = match &self.quantized {
            Some(q) => (q.numerics, &q.graph),
            None => (self.numerics, graph),
        };
        let layers: Vec<String> = layers.nodes.iter().map(|n| n.name.clone()).collect();
        let rate = |(c, t): (usize, usize)| c as f64 / t.max(1) as f64;
        let (float_accuracy, quantized_accuracy) = match data {
            Some(data) if self.dataset(data)?.labels.is_some() => {
                let float = Some(rate(self.correct(data)?));
                let quant = match self.quantized {
                    Some(_) => Some(rate(self.quantized_correct(data)?)),
                    None => None,
                };
                (float, quant)
            }
            _ => (None, None),
        };
        // The prepared model's qconfigs, or a loaded converted model's (`float`: not listed).
        let mut all = self.layer_qconfigs();
        let qconfigs = layers
            .into_iter()
            .filter_map(|l| all.remove(&l).filter(|q| q != "float").map(|q| (l, q)))
            .collect();
        Ok(ReportContext {
            qlab_version: env!("CARGO_PKG_VERSION").into(),
            engine: numerics.engine.name().into(),
            profile: numerics.profile.name().into(),
            isa: numerics.isa().name().into(),
            // The file name, not the path as written: a replay from another directory names
            // the same file differently, and must write the same report.
            model_file: Path::new(&model)
                .file_name()
                .map_or_else(|| model.clone(), |n| n.to_string_lossy().into_owned()),
            model_sha256: self.model_sha256.clone(),
            datasets: self.datasets.values().map(fingerprint).collect(),
            float_accuracy,
            quantized_accuracy,
            qconfigs,
        })
    }
}

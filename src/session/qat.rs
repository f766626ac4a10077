//! The QAT verbs of the workbench: `prepare qat` (fusion that keeps BatchNorm, fake-quants from
//! the engine's QAT qconfig), `train` (epochs of SGD with PyTorch's freeze schedule) and the
//! QAT branch of `convert`. Training changes the model in place, epoch by epoch, as PyTorch's
//! does; it is not cancellable midway.

use super::command::TrainOptions;
use super::{Output, SessionError, Workbench};
use crate::graph::train::{Rng, Sgd};
use crate::import::DatasetError;
use crate::qconfig::presets::get_default_qat_qconfig;
use crate::workflow::{self, Epoch, QConfigKey, QConfigMap, QatError, fuse_modules_qat};

impl From<QatError> for SessionError {
    fn from(e: QatError) -> Self {
        match e {
            QatError::Workflow(w) => SessionError::Workflow(w),
            QatError::Graph(g) => SessionError::Graph(g),
            other => SessionError::Qat(other),
        }
    }
}

impl Workbench {
    /// The QAT qconfig map: the user's entries over the engine's default QAT qconfig (version 1,
    /// PyTorch 2.x's default: fused moving-average fake-quants).
    fn qat_qconfigs(&self) -> Result<QConfigMap, SessionError> {
        let mut map = QConfigMap::default();
        if !self
            .qconfigs
            .entries
            .iter()
            .any(|(k, _)| *k == QConfigKey::Global)
        {
            let q = get_default_qat_qconfig(self.numerics.engine.name(), 1)?;
            map.set(QConfigKey::Global, Some(q));
        }
        map.entries.extend(self.qconfigs.entries.iter().cloned());
        Ok(map)
    }

    pub(super) fn prepare_qat(&mut self) -> Result<Output, SessionError> {
        let (_, graph) = self.model.as_ref().ok_or(SessionError::NoModel)?;
        // Fusion for QAT keeps BatchNorm; patterns are found as `fuse auto` finds them.
        let (_, groups) = workflow::fuse_auto(graph)?;
        let groups: Vec<Vec<String>> = groups.into_iter().map(|g| g.modules).collect();
        let fused = fuse_modules_qat(graph, &groups)?;
        let model = workflow::prepare_qat(&fused, &self.qat_qconfigs()?)?;
        let text = format!(
            "prepared for QAT ({} engine): {} fused group(s) kept with BatchNorm, fake-quants on activations and weights",
            self.numerics.engine,
            groups.len()
        );
        self.prepared = None;
        self.drop_converted();
        self.qat = Some(model);
        Ok(Output::Text(text))
    }

    pub(super) fn train(&mut self, t: &TrainOptions) -> Result<Output, SessionError> {
        self.dataset(&t.data)?;
        let d = &self.datasets[&t.data];
        let labels = d
            .labels
            .as_deref()
            .ok_or_else(|| SessionError::NoLabels(t.data.clone()))?;
        // Train a copy and install it only when every epoch ran: a failed or cancelled
        // `train` leaves the model as it was.
        let mut trained = self.qat.clone().ok_or(SessionError::NotPreparedForQat)?;
        let model = &mut trained;
        d.check_model(&model.graph)?;
        // Embedding ids have no gradient to follow; a model pinned to batch B can only take
        // steps of B (a step over several runs would need gradient accumulation).
        let inputs = d.float_inputs("train")?;
        if let Some((input, b)) = super::feed::pinned_batch(&model.graph)
            && t.batch != b
        {
            return Err(DatasetError::InputMismatch {
                dataset: t.data.clone(),
                input: input.into(),
                detail: format!("the model input pins batch {b}: train with batch={b}"),
            }
            .into());
        }
        if t.freeze {
            model.set_observers_enabled(false);
            model.freeze_bn_stats();
        }
        model.set_training(true);
        let mut sgd = Sgd::new(t.lr, 0.0, 0.0, false);
        let mut rng = Rng::new(t.seed);
        let mut losses = Vec::new();
        let stop = &mut || super::cancel::check().is_err();
        for _ in 0..t.epochs {
            match model.train_epoch_until(
                Epoch {
                    x: inputs,
                    labels,
                    batch_size: t.batch,
                },
                &mut rng,
                &mut sgd,
                stop,
            )? {
                Some(loss) => losses.push(loss),
                None => return Err(SessionError::Cancelled),
            }
        }
        model.set_training(false);
        self.qat = Some(trained);
        self.quantized = None;
        self.quantized_outputs.clear();
        Ok(Output::Text(format!(
            "trained {} epoch(s) on {}{}: mean loss per epoch {}",
            t.epochs,
            t.data,
            if t.freeze {
                " (observers disabled, BN frozen)"
            } else {
                ""
            },
            losses
                .iter()
                .map(|l| format!("{l:.6}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    pub(super) fn convert_qat(&mut self) -> Result<Output, SessionError> {
        let numerics = self.numerics;
        let model = self.qat.as_mut().ok_or(SessionError::NotPrepared)?;
        let converted = workflow::convert_qat(model, numerics)?;
        Ok(self.install(converted))
    }
}

//! `export pytorch out=F.py`: writes `F.json` (the converted model's qparams under PyTorch's
//! module paths, from the same rows as `export qparams`) and `F.py` (the script whose `apply`
//! sets them on a model prepared with PyTorch's eager `prepare`; see [`crate::report`]'s
//! `pytorch.rs`). Only a statically converted model has qparams PyTorch's `convert` can take:
//! a QAT model's weights were trained in qlab, and dynamic quantization observes nothing.

use super::export::write_file;
use super::{Output, SessionError, Workbench};
use crate::report::{FunctionalSite, TorchModule, TorchQParamsFile, apply_script};
use std::collections::HashMap;
use std::path::Path;

const COMMAND: &str = "export pytorch";

/// The module path a functional node was called in: its name without the `.kind` (or
/// `.kind_N`) the importer appends to nodes that share a scope; the name itself when the node
/// had its scope to itself; `""` at the root.
fn scope_of(name: &str, kind: &str) -> String {
    let (head, tail) = match name.rsplit_once('.') {
        Some((h, t)) => (h, t),
        None => ("", name),
    };
    let numbered = tail
        .strip_prefix(kind)
        .is_some_and(|rest| rest.is_empty() || rest.strip_prefix('_').is_some_and(is_number));
    if numbered {
        head.to_string()
    } else {
        name.to_string()
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `F.json` and the module name `F` of `out` (`F.py`).
fn companions(out: &str) -> (String, String) {
    let path = Path::new(out);
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let json = path.with_extension("json").to_string_lossy().into_owned();
    (json, stem)
}

impl Workbench {
    pub(super) fn export_pytorch(&mut self, out: &str) -> Result<Output, SessionError> {
        if self.qat.is_some() {
            return Err(SessionError::QatModel { command: COMMAND });
        }
        let model = self.quantized.as_ref().ok_or(SessionError::NotConverted)?;
        if let Some((node, _)) = model
            .graph
            .nodes
            .iter()
            .zip(&model.ops)
            .find(|(_, op)| op.is_dynamic())
        {
            return Err(SessionError::Unsupported {
                command: COMMAND,
                reason: format!(
                    "the model is dynamically quantized ({} among others); apply sets the \
                     observers of static prepare/convert, and quantize_dynamic needs none",
                    node.name
                ),
            });
        }
        let sites: HashMap<String, FunctionalSite> = model
            .graph
            .nodes
            .iter()
            .zip(&model.ops)
            .filter_map(|(n, op)| {
                let method = op.functional_method()?;
                let scope = scope_of(&n.name, &n.op.kind().to_ascii_lowercase());
                Some((n.name.clone(), Some((method, scope))))
            })
            .collect();
        let modules: Vec<TorchModule> = self
            .qparams_rows(None)?
            .iter()
            .filter_map(|r| TorchModule::from_row(r, sites.get(&r.layer).cloned().flatten()))
            .collect();
        let file = TorchQParamsFile::new(self.report_context(None)?, modules);
        let (json, module) = companions(out);
        let json_name = Path::new(&json)
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        // The JSON first: a script never names a file that was not written.
        write_file(&self.at(&json), &json, file.to_json())?;
        write_file(&self.at(out), out, apply_script(&file, &json_name, &module))?;
        let functionals = file.modules.iter().filter(|m| m.module.is_none()).count();
        Ok(Output::Text(format!(
            "wrote {out} and {json}: qparams of {} module(s) ({functionals} FloatFunctional) \
             for PyTorch's convert on {}",
            file.modules.len(),
            file.engine
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_drop_the_importers_suffix_only() {
        assert_eq!(scope_of("stage2.0.concat", "concat"), "stage2.0");
        assert_eq!(scope_of("layer1.0.add_2", "add"), "layer1.0");
        assert_eq!(scope_of("add", "add"), "");
        assert_eq!(scope_of("add_1", "add"), "");
        // A node alone in its scope takes the scope's path.
        assert_eq!(scope_of("features.1", "add"), "features.1");
        assert_eq!(scope_of("blk.adder", "add"), "blk.adder");
    }

    #[test]
    fn companions_share_the_stem() {
        assert_eq!(
            companions("out/apply_qlab.py"),
            ("out/apply_qlab.json".into(), "apply_qlab".into())
        );
    }
}

//! A graph's trainable parameters by PyTorch name (`module_path.weight` / `.bias`), read-only
//! or mutable in place. BatchNorm's weight and bias are parameters; its running statistics are
//! buffers and are not listed. LSTM weights are not listed (LSTM is not trainable here).

use crate::graph::{Graph, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};

/// The parameter views of `$nodes`, taken with `$view` (`view` / `view_mut`) through
/// `&` / `&mut` borrows (`$m` is `mut` for the latter).
macro_rules! param_views {
    ($nodes:expr, $view:ident $(, $m:tt)?) => {{
        let mut out = Vec::new();
        for node in $nodes {
            let name = node.name.clone();
            match & $($m)? node.op {
                Op::Conv(p) => {
                    out.push((format!("{name}.weight"), p.weight.$view().into_dyn()));
                    if let Some(b) = & $($m)? p.bias {
                        out.push((format!("{name}.bias"), b.$view().into_dyn()));
                    }
                }
                Op::Linear(p) => {
                    out.push((format!("{name}.weight"), p.weight.$view().into_dyn()));
                    if let Some(b) = & $($m)? p.bias {
                        out.push((format!("{name}.bias"), b.$view().into_dyn()));
                    }
                }
                Op::BatchNorm(p) => {
                    out.push((format!("{name}.weight"), p.weight.$view().into_dyn()));
                    out.push((format!("{name}.bias"), p.bias.$view().into_dyn()));
                }
                _ => {}
            }
        }
        out
    }};
}

/// Every trainable parameter with its name, in node order (weight before bias).
pub fn parameters(graph: &Graph) -> Vec<(String, ArrayViewD<'_, f32>)> {
    param_views!(graph.nodes.iter(), view)
}

/// Every trainable parameter, mutable in place, with its name.
pub fn parameters_mut(graph: &mut Graph) -> Vec<(String, ArrayViewMutD<'_, f32>)> {
    param_views!(graph.nodes.iter_mut(), view_mut, mut)
}

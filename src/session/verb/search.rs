//! `search`: the fewest layers to keep in float, and per layer the activation observer, that
//! meet an accuracy or SQNR target.

use super::args::{Args, Line};
use super::{Details, Form, VerbSpec, Word, opt};
use crate::session::command::SearchTarget;
use crate::session::{Command, SessionError};

pub(super) const SEARCH: VerbSpec = VerbSpec {
    name: "search",
    usage: "search DATA calib=CALIB target=accuracy>=X|sqnr>=Y [max_float=N] [batch=32] [batches=N]",
    summary: "find the fewest layers to keep in float (and per layer the activation observer) that meet an accuracy or SQNR target, and apply them",
    details: Details::Text(
        "target  accuracy>=X  top-1 accuracy of the converted model on DATA (labelled; X in 0..1)
        sqnr>=Y      SQNR (dB) of the model's output against the float model on DATA
The search starts from the session's qconfigs (the engine's default where none is set),
calibrated on CALIB as quantize CALIB batch=N would, and measured on DATA; a target already
met changes nothing. Otherwise every step below is a model built and measured:
 1. rank the quantized Conv / Linear / add / mul / cat modules by the metric with every module
    but that one quantized (sensitivity's all_but_this column), largest first;
 2. observers, greedy: for each ranked module whose leaving out beats the baseline (or ties it,
    for accuracy, which moves in steps of one sample), then each
    other module with its own output observer (Hardswish, ...), try the other activation
    observers (histogram, mse, entropy, percentile; each also with reduce_range=false where it
    is on), qparams re-derived from the calibration's histograms, and keep the best if it
    beats the current metric; stop once the target is met;
 3. float, greedy: if not met, measure every ranked module in float at once (if even that
    misses, stop and say so); else keep modules in float one by one in ranking order while
    each beats the current metric, up to max_float of them, until the target is met;
 4. prune: put each float module back (newest first) while the target still holds;
 5. verify: apply the chosen qconfig lines and quantize CALIB (prepare, calibrate and
    convert from scratch) and measure again; that figure is the result.
It prints the trail (step, module, what was tried, what was kept, metric). The session records
the applied qconfig lines and quantize, not the search, so save session replays the result
without searching again. When no configuration meets the target it says so with the best it
found and changes nothing. max_float defaults to every ranked module; max_float=0 tries
observers only. A path keeps its PyTorch meaning: its qconfig covers the modules under it
(features.15, a residual add named after its block, covers the block). The input QuantStub
keeps the global qconfig.",
    ),
    forms: &[Form::new(
        &[Word::Dataset],
        &[
            opt("calib", Word::Dataset),
            opt("target", Word::Text),
            opt("max_float", Word::Text),
            opt("batch", Word::Text),
            opt("batches", Word::Text),
        ],
    )],
    parse: parse_search,
    print: print_search,
};

fn parse_search(args: &mut Args) -> Result<Command, SessionError> {
    let batching = args.batching()?;
    let calib = args
        .option("calib")
        .ok_or_else(|| args.error("search needs calib=DATA"))?;
    let target = args
        .option("target")
        .ok_or_else(|| args.error("search needs target=accuracy>=X or target=sqnr>=Y"))?;
    let target = SearchTarget::parse(&target).map_err(|e| args.error(e))?;
    let max_float = match args.option("max_float") {
        Some(t) => Some(t.parse::<usize>().map_err(|_| {
            args.error(format!(
                "max_float={t} is not a count of modules (0 or more)"
            ))
        })?),
        None => None,
    };
    let [data] = args.exactly::<1>()?;
    Ok(Command::Search {
        data,
        calib,
        target,
        max_float,
        batching,
    })
}

fn print_search(cmd: &Command, line: &mut Line) -> bool {
    let Command::Search {
        data,
        calib,
        target,
        max_float,
        batching,
    } = cmd
    else {
        return false;
    };
    line.arg(data)
        .option("calib", calib)
        .option("target", target);
    if let Some(n) = max_float {
        line.option("max_float", n);
    }
    line.batching(batching);
    true
}

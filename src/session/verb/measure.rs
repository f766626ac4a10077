//! The verbs that measure quantization error and write it out: `errors`, `export`, `plot`,
//! `sensitivity` and `compare` (two engines, or a reference model's dump).

use super::args::{Args, Line};
use super::{Details, Form, MODE, Opt, VerbSpec, Word, opt};
use crate::engine::Engine;
use crate::observer::ObserverSpec;
// `errors weights` defaults to fbgemm's weight observer (per-channel symmetric qint8 min/max).
use crate::qconfig::presets::default_per_channel_weight_observer;
use crate::report::PlotFormat;
use crate::session::{Batching, Command, Exported, SessionError};

pub(super) const ERRORS: VerbSpec = VerbSpec {
    name: "errors",
    usage: "errors weights [weight=SPEC] | errors DATA [mode=cumulative|isolated]",
    summary: "per-layer error, worst first: of the weights, or of the converted model's activations",
    // The columns' definitions, so the formulas a user reads are the ones the code computes.
    details: Details::Text(
        "columns, pooled over DATA (x float, y dequantized, s the quantization step, n elements):
  sqnr_db     20·log10(‖x‖ / ‖x−y‖)
  mse         Σ(x−y)² / n
  max_abs     max |x−y|
  mean_err    Σ(y−x) / n (bias)
  cosine      Σxy / (‖x‖·‖y‖)
  rmse/scale  sqrt(Σ((x−y)/s)² / n); uniform rounding noise gives 1/√12 ≈ 0.2887
  clip%       100 · #{x outside [(qmin−zp)·s − s/2, (qmax−zp)·s + s/2]} / n, output qparams
              (on DATA; the TUI histogram's 'calib clip' counts the calibration values instead)
  in_clip%    100 · #{x_in outside [(qmin−zp)·s, (qmax−zp)·s]} / #x_in, where x_in are the float
              model's values of the op's quantized operands and s, zp their qparams (taken from
              the float model in both modes; - when the op has no quantized operand)
  saturated   u8×s8 pair sums the engine saturated to int16 (fbgemm's depthwise fast path, and
              every fbgemm GEMM on profile=avx2; never qnnpack or profile=exact), summed over
              DATA: in the quantized model's run (cumulative) or the op's isolated run (isolated)
modes: cumulative compares the quantized model run end to end with the float model; isolated
feeds each quantized op the float model's input, quantized with its input qparams",
    ),
    forms: &[
        Form::new(&[Word::Keyword(&["weights"])], &[WEIGHT]),
        Form::new(&[Word::Dataset], &[MODE]),
    ],
    parse: parse_errors,
    print: print_errors,
};

fn parse_errors(args: &mut Args) -> Result<Command, SessionError> {
    match args.object().as_str() {
        "weights" => {
            let weight = weight_option(args)?;
            args.exactly::<1>()?;
            Ok(Command::ErrorsWeights { weight })
        }
        "" => Err(args.unknown_object()),
        _ => {
            let mode = args.mode()?;
            let [data] = args.exactly::<1>()?;
            Ok(Command::ErrorsLayers { data, mode })
        }
    }
}

/// `weight=SPEC` of `errors weights` and `export weights`; fbgemm's per-channel weight observer
/// when it is left out.
const WEIGHT: Opt = opt("weight", Word::Observer);

fn weight_option(args: &mut Args) -> Result<ObserverSpec, SessionError> {
    match args.option("weight") {
        Some(text) => text.parse::<ObserverSpec>().map_err(|e| args.error(e)),
        None => Ok(default_per_channel_weight_observer()),
    }
}

fn print_weight(line: &mut Line, weight: &ObserverSpec) {
    line.option_unless("weight", weight, &default_per_channel_weight_observer());
}

fn print_errors(cmd: &Command, line: &mut Line) -> bool {
    match cmd {
        Command::ErrorsWeights { weight } => {
            print_weight(line.word("weights"), weight);
        }
        Command::ErrorsLayers { data, mode } => {
            line.arg(data).mode(*mode);
        }
        _ => return false,
    }
    true
}

/// The report file `export` writes, by extension.
const OUT: Opt = opt("out", Word::Path);

pub(super) const EXPORT: VerbSpec = VerbSpec {
    name: "export",
    usage: "export model out=FILE.onnx | export errors DATA out=FILE.json|csv|md|html [mode=cumulative|isolated] | export weights out=FILE.json|csv|md|html [weight=SPEC] | export compare fbgemm qnnpack DATA out=FILE.json|csv|md|html | export sensitivity DATA calib=CALIB out=FILE.json|csv|md|html [batch=32] [batches=N] | export qparams out=FILE.json|csv|md|html [data=DATA] | export pytorch out=FILE.py",
    summary: "write the converted model as ONNX in QDQ form, a report of errors, errors weights, compare engines, sensitivity or show qparams (versioned JSON, CSV, Markdown, or HTML), or the script that sets qlab's qparams in PyTorch",
    details: Details::Text(
        "export model writes the converted static model as ONNX (opset 17, or 20 with GELU) in QDQ
form: QuantizeLinear / DequantizeLinear on every quantized activation (uint8), int8 weights per
tensor or per channel (axis), int32 biases at scale s_in·s_w, fused ReLUs as Relu before the
pair, float layers left float, module paths as node names. ONNX Runtime runs it (and fuses it
into its own integer kernels); qlab's load model reads it back. Each report holds what its verb prints, at full precision and in the same order, with its
context (qlab version, engine, profile, ISA, model file and SHA-256, datasets' fingerprints,
accuracies, each layer's qconfig); JSON has schema_version and kind (errors, weights, compare,
sensitivity, qparams). export qparams lists per module the observer, dtype, qscheme, scale,
zero point, observed range, weight scales and zero points (show qparams' values), and the
output clip rate on data=DATA when given. The HTML error report adds a SQNR chart and the observer histograms of the 3
lowest-SQNR layers that keep one. export compare is never timed: reports replay byte for byte.
export pytorch (a statically converted model) writes FILE.json, every quantized module's output
and weight qparams under PyTorch's module paths, and FILE.py, a module using only torch whose
apply(prepared) gives a model prepared with torch.ao.quantization.prepare observers returning
qlab's qparams (whatever qlab calibrated with), so convert builds qlab's int8 model;
tools/verify_pytorch.py checks the result against qlab's predict",
    ),
    forms: &[
        Form::new(&[Word::Keyword(&["model"])], &[OUT]),
        Form::new(&[Word::Keyword(&["errors"]), Word::Dataset], &[OUT, MODE]),
        Form::new(&[Word::Keyword(&["weights"])], &[OUT, WEIGHT]),
        Form::new(
            &[
                Word::Keyword(&["compare"]),
                Word::Engine,
                Word::Engine,
                Word::Dataset,
            ],
            &[OUT],
        ),
        Form::new(
            &[Word::Keyword(&["sensitivity"]), Word::Dataset],
            &[OUT, CALIB, BATCH, BATCHES],
        ),
        Form::new(
            &[Word::Keyword(&["qparams"])],
            &[OUT, opt("data", Word::Dataset)],
        ),
        Form::new(&[Word::Keyword(&["pytorch"])], &[OUT]),
    ],
    parse: parse_export,
    print: print_export,
};

fn parse_export(args: &mut Args) -> Result<Command, SessionError> {
    let what = match args.object().as_str() {
        "errors" => {
            let mode = args.mode()?;
            let [_, data] = args.exactly::<2>()?;
            Exported::Errors { data, mode }
        }
        "weights" => {
            let weight = weight_option(args)?;
            args.exactly::<1>()?;
            Exported::Weights { weight }
        }
        "compare" => {
            let [_, a, b, data] = args.exactly::<4>()?;
            let (a, b) = engines(args, &a, &b)?;
            Exported::Compare { a, b, data }
        }
        "sensitivity" => {
            let (calib, batching) = calib_and_batching(args)?;
            let [_, data] = args.exactly::<2>()?;
            Exported::Sensitivity {
                data,
                calib,
                batching,
            }
        }
        "qparams" => {
            let data = args.option("data");
            args.exactly::<1>()?;
            Exported::QParams { data }
        }
        "model" => {
            args.exactly::<1>()?;
            Exported::Model
        }
        "pytorch" => {
            args.exactly::<1>()?;
            Exported::PyTorch
        }
        _ => return Err(args.unknown_object()),
    };
    // The model and the PyTorch script are not reports: each has its one extension.
    let own = match what {
        Exported::Model => Some(".onnx"),
        Exported::PyTorch => Some(".py"),
        _ => None,
    };
    if let Some(ext) = own {
        let needs = format!("export {} needs out=FILE{ext}", what.kind());
        let out = args.option("out").ok_or_else(|| args.error(&needs))?;
        if !out.ends_with(ext) {
            return Err(args.error(format!("'{out}': the extension must be {ext} ({needs})")));
        }
        return Ok(Command::Export { what, out });
    }
    let out = args
        .option("out")
        .ok_or_else(|| args.error("export needs out=FILE.json|csv|md|html"))?;
    if crate::report::Format::from_path(&out).is_none() {
        return Err(args.error(format!(
            "'{out}': the extension must be .json, .csv, .md or .html"
        )));
    }
    Ok(Command::Export { what, out })
}

fn print_export(cmd: &Command, line: &mut Line) -> bool {
    let Command::Export { what, out } = cmd else {
        return false;
    };
    line.word(what.kind());
    match what {
        Exported::Errors { data, mode } => {
            line.arg(data).option("out", out).mode(*mode);
        }
        Exported::Weights { weight } => {
            print_weight(line.option("out", out), weight);
        }
        Exported::Compare { a, b, data } => {
            line.word(a).word(b).arg(data).option("out", out);
        }
        Exported::Sensitivity {
            data,
            calib,
            batching,
        } => {
            line.arg(data)
                .option("calib", calib)
                .option("out", out)
                .batching(batching);
        }
        Exported::QParams { data } => {
            line.option("out", out);
            if let Some(d) = data {
                line.option("data", d);
            }
        }
        Exported::Model | Exported::PyTorch => {
            line.option("out", out);
        }
    }
    true
}

pub(super) const PLOT: VerbSpec = VerbSpec {
    name: "plot",
    usage: "plot histogram LAYER out=FILE.svg|png [scale=linear|log] | plot errors DATA out=FILE.svg|png [mode=cumulative|isolated]",
    summary: "draw an observer's histogram with its quantization range, or per-layer SQNR, as SVG or PNG",
    details: Details::None,
    forms: &[
        Form::new(
            &[Word::Keyword(&["histogram"]), Word::Layer],
            &[OUT, opt("scale", Word::Keyword(&["linear", "log"]))],
        ),
        Form::new(&[Word::Keyword(&["errors"]), Word::Dataset], &[OUT, MODE]),
    ],
    parse: parse_plot,
    print: print_plot,
};

fn parse_plot(args: &mut Args) -> Result<Command, SessionError> {
    let what = args.object();
    if what != "histogram" && what != "errors" {
        return Err(args.unknown_object());
    }
    let mode = args.mode()?;
    let log = args.switch("scale", false)?;
    let out = args
        .option("out")
        .ok_or_else(|| args.error("plot needs out=FILE.svg or out=FILE.png"))?;
    PlotFormat::from_path(&out).map_err(|e| args.error(e))?;
    let [_, target] = args.exactly::<2>()?;
    Ok(if what == "histogram" {
        Command::PlotHistogram {
            layer: target,
            out,
            log,
        }
    } else {
        Command::PlotErrors {
            data: target,
            out,
            mode,
        }
    })
}

fn print_plot(cmd: &Command, line: &mut Line) -> bool {
    match cmd {
        Command::PlotHistogram { layer, out, log } => {
            line.word("histogram")
                .arg(layer)
                .option("out", out)
                .switch("scale", *log, false);
        }
        Command::PlotErrors { data, out, mode } => {
            line.word("errors").arg(data).option("out", out).mode(*mode);
        }
        _ => return false,
    }
    true
}

pub(super) const SENSITIVITY: VerbSpec = VerbSpec {
    name: "sensitivity",
    usage: "sensitivity DATA calib=CALIB [batch=32] [batches=N]",
    summary: "rank modules by how much quantizing them alone / leaving them out changes accuracy (or SQNR)",
    details: Details::None,
    forms: &[Form::new(&[Word::Dataset], &[CALIB, BATCH, BATCHES])],
    parse: parse_sensitivity,
    print: print_sensitivity,
};

const CALIB: Opt = opt("calib", Word::Dataset);
const BATCH: Opt = opt("batch", Word::Text);
const BATCHES: Opt = opt("batches", Word::Text);

/// `calib=CALIB [batch=N] [batches=N]` of `sensitivity` and `export sensitivity`.
fn calib_and_batching(args: &mut Args) -> Result<(String, Batching), SessionError> {
    let batching = args.batching()?;
    let calib = args
        .option("calib")
        .ok_or_else(|| args.error("sensitivity needs calib=DATA"))?;
    Ok((calib, batching))
}

fn parse_sensitivity(args: &mut Args) -> Result<Command, SessionError> {
    let (calib, batching) = calib_and_batching(args)?;
    let [data] = args.exactly::<1>()?;
    Ok(Command::Sensitivity {
        data,
        calib,
        batching,
    })
}

fn print_sensitivity(cmd: &Command, line: &mut Line) -> bool {
    let Command::Sensitivity {
        data,
        calib,
        batching,
    } = cmd
    else {
        return false;
    };
    line.arg(data).option("calib", calib).batching(batching);
    true
}

pub(super) const COMPARE: VerbSpec = VerbSpec {
    name: "compare",
    usage: "compare engines fbgemm qnnpack DATA [timing=on] | compare reference LAYERS.npz DATA [qparams=Q.json] [sample=N]",
    summary: "convert the calibrated model for two engines and compare them layer by layer (timing=on adds per-layer latency, batch 1, one thread, median of 20, against fp32); or compare the converted model's per-module int8 outputs and qparams on one sample with a reference dump (PyTorch's: PATH int_repr, PATH:scale, PATH:zero_point) and name the first module that differs",
    details: Details::None,
    forms: &[
        Form::new(
            &[
                Word::Keyword(&["engines"]),
                Word::Engine,
                Word::Engine,
                Word::Dataset,
            ],
            // Off by default: timings differ run to run, and replayed reports must not.
            &[opt("timing", Word::Keyword(&["off", "on"]))],
        ),
        Form::new(
            &[Word::Keyword(&["reference"]), Word::Path, Word::Dataset],
            &[opt("qparams", Word::Path), opt("sample", Word::Text)],
        ),
    ],
    parse: parse_compare,
    print: print_compare,
};

fn parse_compare(args: &mut Args) -> Result<Command, SessionError> {
    match args.object().as_str() {
        "engines" => {
            let timing = args.switch("timing", false)?;
            let [_, a, b, data] = args.exactly::<4>()?;
            let (a, b) = engines(args, &a, &b)?;
            Ok(Command::CompareEngines { a, b, data, timing })
        }
        "reference" => {
            let qparams = args.option("qparams");
            let sample = match args.option("sample") {
                Some(t) => t
                    .parse()
                    .map_err(|_| args.error(format!("sample '{t}' is not a sample index")))?,
                None => 0,
            };
            let [_, layers, data] = args.exactly::<3>()?;
            Ok(Command::CompareReference {
                layers,
                data,
                qparams,
                sample,
            })
        }
        _ => Err(args.unknown_object()),
    }
}

/// The two engines `compare engines` and `export compare` name.
fn engines(args: &Args, a: &str, b: &str) -> Result<(Engine, Engine), SessionError> {
    let engine = |n: &str| Engine::parse(n).map_err(|e| args.error(e));
    Ok((engine(a)?, engine(b)?))
}

fn print_compare(cmd: &Command, line: &mut Line) -> bool {
    match cmd {
        Command::CompareEngines { a, b, data, timing } => {
            line.word("engines")
                .word(a)
                .word(b)
                .arg(data)
                .switch("timing", *timing, false);
        }
        Command::CompareReference {
            layers,
            data,
            qparams,
            sample,
        } => {
            line.word("reference").arg(layers).arg(data);
            if let Some(q) = qparams {
                line.option("qparams", q);
            }
            line.option_unless("sample", *sample, 0);
        }
        _ => return false,
    }
    true
}

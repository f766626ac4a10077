//! The verbs of PyTorch's eager quantization workflow, in the order a session uses them:
//! `engine`, `fuse`, `prepare`, `train` (QAT), `calibrate`, `check`, `convert`, and `quantize`,
//! which runs the static steps in one go or quantizes dynamically. (`qconfig` has its own file.)

use super::args::{Args, Line};
use super::{Details, Form, VerbSpec, Word, opt};
use crate::engine::{Engine, HostProfile};
use crate::session::command::TrainOptions;
use crate::session::{Command, SessionError};

/// `batch=N batches=N` of the calibrating verbs.
const BATCHING: [super::Opt; 2] = [opt("batch", Word::Text), opt("batches", Word::Text)];

pub(super) const ENGINE: VerbSpec = VerbSpec {
    name: "engine",
    usage: "engine fbgemm|qnnpack|x86 [profile=vnni|avx2|exact]",
    summary: "the quantized engine (and host profile) convert targets",
    details: Details::None,
    forms: &[Form::new(
        &[Word::Engine],
        &[opt("profile", Word::Keyword(&["vnni", "avx2", "exact"]))],
    )],
    parse: parse_engine,
    print: print_engine,
};

fn parse_engine(args: &mut Args) -> Result<Command, SessionError> {
    // `HostProfile::parse` rather than the keyword list: it accepts any letter case.
    let profile = match args.option("profile") {
        Some(p) => HostProfile::parse(&p).map_err(|e| args.error(e))?,
        None => HostProfile::default(),
    };
    let [name] = args.exactly::<1>()?;
    let engine = Engine::parse(&name).map_err(|e| args.error(e))?;
    Ok(Command::Engine { engine, profile })
}

fn print_engine(cmd: &Command, line: &mut Line) -> bool {
    let Command::Engine { engine, profile } = cmd else {
        return false;
    };
    line.word(engine)
        .option_unless("profile", *profile, HostProfile::default());
    true
}

pub(super) const FUSE: VerbSpec = VerbSpec {
    name: "fuse",
    usage: "fuse auto [add_relu=off] | fuse conv1,bn1,relu1 conv2,relu2",
    summary: "fuse Conv/Linear+BN+ReLU(6) patterns (BN folded bit-exactly) and add+ReLU as FloatFunctional.add_relu (add_relu=off keeps them apart)",
    details: Details::None,
    forms: &[
        // `add_relu=off` keeps an add followed by a ReLU apart (observed before the ReLU)
        // instead of reading it as `FloatFunctional.add_relu`; `quantize` then fuses the same.
        Form::new(
            &[Word::Keyword(&["auto"])],
            &[opt("add_relu", Word::Keyword(&["off", "on"]))],
        ),
        Form {
            args: &[Word::LayerGroup],
            repeats: true,
            options: &[],
        },
    ],
    parse: parse_fuse,
    print: print_fuse,
};

fn parse_fuse(args: &mut Args) -> Result<Command, SessionError> {
    if args.object() == "auto" {
        let add_relu = args.switch("add_relu", true)?;
        args.exactly::<1>()?;
        return Ok(Command::Fuse {
            groups: None,
            add_relu,
        });
    }
    if args.positional.is_empty() {
        return Err(args.error("fuse needs `auto` or module groups"));
    }
    let groups = args
        .positional
        .iter()
        .map(|g| g.split(',').map(str::to_string).collect())
        .collect();
    Ok(Command::Fuse {
        groups: Some(groups),
        add_relu: true,
    })
}

fn print_fuse(cmd: &Command, line: &mut Line) -> bool {
    match cmd {
        Command::Fuse {
            groups: None,
            add_relu,
        } => {
            line.word("auto").switch("add_relu", *add_relu, true);
        }
        Command::Fuse {
            groups: Some(groups),
            ..
        } => {
            for g in groups {
                line.arg(&g.join(","));
            }
        }
        _ => return false,
    }
    true
}

pub(super) const EQUALIZE: VerbSpec = VerbSpec {
    name: "equalize",
    usage: "equalize [conv1,conv2[,fc] ...] [threshold=0.0001]",
    summary: "cross-layer equalization of Conv/Linear pairs with only a ReLU between them (all such pairs when none is named), after fuse",
    details: Details::Text(
        "Output channel c of the first module is divided by s[c] and input channel c of the second\n\
         multiplied by it, s = sqrt(range1/range2) of the channels' weight ranges (max - min), in\n\
         sweeps until the weights change by less than threshold (summed L2 norm): PyTorch's\n\
         torch.ao.quantization._equalize.equalize, bit for bit. The float model computes the same\n\
         function; per-tensor weight quantization loses less on uneven channels (depthwise convs).\n\
         BatchNorm must be folded first (fuse auto). A ReLU6 between the two, or a grouped second\n\
         module, is reported and skipped.",
    ),
    forms: &[Form {
        args: &[Word::LayerGroup],
        repeats: true,
        options: &[opt("threshold", Word::Text)],
    }],
    parse: parse_equalize,
    print: print_equalize,
};

/// PyTorch's default `threshold` of `equalize`.
const EQUALIZE_THRESHOLD: f64 = crate::workflow::DEFAULT_THRESHOLD;

fn parse_equalize(args: &mut Args) -> Result<Command, SessionError> {
    let threshold = match args.option("threshold") {
        None => EQUALIZE_THRESHOLD,
        Some(t) => match t.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => v,
            _ => return Err(args.error(format!("threshold={t}: a positive number"))),
        },
    };
    let groups = (!args.positional.is_empty()).then(|| {
        args.positional
            .iter()
            .map(|g| g.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    });
    if let Some(g) = groups.iter().flatten().find(|g| g.len() < 2) {
        return Err(args.error(format!(
            "'{}': a group names two or more modules (first,second)",
            g.join(",")
        )));
    }
    Ok(Command::Equalize { groups, threshold })
}

fn print_equalize(cmd: &Command, line: &mut Line) -> bool {
    let Command::Equalize { groups, threshold } = cmd else {
        return false;
    };
    for g in groups.iter().flatten() {
        line.arg(&g.join(","));
    }
    line.option_unless("threshold", *threshold, EQUALIZE_THRESHOLD);
    true
}

pub(super) const CORRECT: VerbSpec = VerbSpec {
    name: "correct",
    usage: "correct bias DATA [batch=32] [batches=N]",
    summary: "empirical bias correction of the converted model's unfused Conv2d / Linear modules on DATA",
    details: Details::Text(
        "Module by module in graph order, the mean of (quantized - float) output per channel over\n\
         DATA is taken off the bias; the float twin runs on the quantized model's input, as\n\
         PyTorch's torch.ao.quantization._correct_bias does. Fused ConvReLU / LinearReLU modules\n\
         are left alone, as there. Changes the converted model; eval or errors show the effect.",
    ),
    forms: &[Form::new(
        &[Word::Keyword(&["bias"]), Word::Dataset],
        &BATCHING,
    )],
    parse: parse_correct,
    print: print_correct,
};

fn parse_correct(args: &mut Args) -> Result<Command, SessionError> {
    if args.object() != "bias" {
        return Err(args.unknown_object());
    }
    let batching = args.batching()?;
    let [_, data] = args.exactly::<2>()?;
    Ok(Command::CorrectBias { data, batching })
}

fn print_correct(cmd: &Command, line: &mut Line) -> bool {
    let Command::CorrectBias { data, batching } = cmd else {
        return false;
    };
    line.word("bias").arg(data).batching(batching);
    true
}

pub(super) const PREPARE: VerbSpec = VerbSpec {
    name: "prepare",
    usage: "prepare | prepare qat",
    summary: "place observers for static quantization, or fake-quants for quantization-aware training",
    details: Details::None,
    forms: &[
        Form::new(&[], &[]),
        Form::new(&[Word::Keyword(&["qat"])], &[]),
    ],
    parse: parse_prepare,
    print: print_prepare,
};

fn parse_prepare(args: &mut Args) -> Result<Command, SessionError> {
    if args.object() == "qat" {
        args.exactly::<1>()?;
        return Ok(Command::PrepareQat);
    }
    args.exactly::<0>()?;
    Ok(Command::Prepare)
}

fn print_prepare(cmd: &Command, line: &mut Line) -> bool {
    match cmd {
        Command::Prepare => {}
        Command::PrepareQat => {
            line.word("qat");
        }
        _ => return false,
    }
    true
}

/// Upper bounds of `train`'s options.
const MAX_EPOCHS: f64 = 100_000.0;
const MAX_BATCH: f64 = 1_048_576.0;
/// Seeds are integers exactly representable in the f64 they are parsed as.
const MAX_SEED: f64 = 9_007_199_254_740_992.0;
const MAX_LR: f64 = 1_000.0;

pub(super) const TRAIN: VerbSpec = VerbSpec {
    name: "train",
    usage: "train DATA [epochs=1] [lr=0.01] [batch=32] [seed=7] [freeze=true]",
    summary: "QAT epochs (SGD, cross-entropy); freeze disables observers and BN statistics first",
    details: Details::None,
    forms: &[Form::new(
        &[Word::Dataset],
        &[
            opt("epochs", Word::Text),
            opt("lr", Word::Text),
            opt("batch", Word::Text),
            opt("seed", Word::Text),
            opt("freeze", Word::Keyword(&["false", "true"])),
        ],
    )],
    parse: parse_train,
    print: print_train,
};

fn parse_train(args: &mut Args) -> Result<Command, SessionError> {
    let number = |args: &mut Args, key: &str, default: f64| -> Result<f64, SessionError> {
        match args.option(key) {
            Some(t) => t
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| args.error(format!("{key}={t} is not a positive number"))),
            None => Ok(default),
        }
    };
    let epochs = number(args, "epochs", 1.0)?;
    let lr = number(args, "lr", 0.01)?;
    let batch = number(args, "batch", 32.0)?;
    let seed = number(args, "seed", 7.0)?;
    let freeze = args.switch("freeze", false)?;
    if epochs.fract() != 0.0 || batch.fract() != 0.0 || seed.fract() != 0.0 {
        return Err(args.error("epochs, batch and seed are integers"));
    }
    // Bounds a run can meet: beyond them a typo (epochs=1e99) would run forever or wrap when
    // converted.
    for (key, value, max) in [
        ("epochs", epochs, MAX_EPOCHS),
        ("batch", batch, MAX_BATCH),
        ("seed", seed, MAX_SEED),
        ("lr", lr, MAX_LR),
    ] {
        if value > max {
            return Err(args.error(format!("{key}={value} is above the limit {max}")));
        }
    }
    let [data] = args.exactly::<1>()?;
    Ok(Command::Train(TrainOptions {
        data,
        epochs: epochs as usize,
        lr: lr as f32,
        batch: batch as usize,
        seed: seed as u64,
        freeze,
    }))
}

fn print_train(cmd: &Command, line: &mut Line) -> bool {
    let Command::Train(t) = cmd else {
        return false;
    };
    // Every number is written, defaults too, so a script states how it trained.
    line.arg(&t.data)
        .option("epochs", t.epochs)
        .option("lr", t.lr)
        .option("batch", t.batch)
        .option("seed", t.seed)
        .switch("freeze", t.freeze, false);
    true
}

pub(super) const CALIBRATE: VerbSpec = VerbSpec {
    name: "calibrate",
    usage: "calibrate DATA [batch=32] [batches=N]",
    summary: "run a dataset through the observers",
    details: Details::None,
    forms: &[Form::new(&[Word::Dataset], &BATCHING)],
    parse: parse_calibrate,
    print: print_calibrate,
};

fn parse_calibrate(args: &mut Args) -> Result<Command, SessionError> {
    let batching = args.batching()?;
    let [data] = args.exactly::<1>()?;
    Ok(Command::Calibrate { data, batching })
}

fn print_calibrate(cmd: &Command, line: &mut Line) -> bool {
    let Command::Calibrate { data, batching } = cmd else {
        return false;
    };
    line.arg(data).batching(batching);
    true
}

pub(super) const CHECK: VerbSpec = VerbSpec {
    name: "check",
    usage: "check",
    summary: "the pre-convert check: unobserved or NaN observers, unfused patterns, unsupported qconfigs",
    details: Details::None,
    forms: &[Form::new(&[], &[])],
    parse: parse_check,
    print: print_check,
};

fn parse_check(args: &mut Args) -> Result<Command, SessionError> {
    args.exactly::<0>()?;
    Ok(Command::Check)
}

fn print_check(cmd: &Command, _: &mut Line) -> bool {
    matches!(cmd, Command::Check)
}

pub(super) const CONVERT: VerbSpec = VerbSpec {
    name: "convert",
    usage: "convert [qparams=Q.json]",
    summary: "build the quantized model for the engine from the calibrated observers (qparams=: take the output scale / zero point of every module a reference file names, e.g. PyTorch's converted model)",
    details: Details::None,
    forms: &[Form::new(&[], &[opt("qparams", Word::Path)])],
    parse: parse_convert,
    print: print_convert,
};

fn parse_convert(args: &mut Args) -> Result<Command, SessionError> {
    let qparams = args.option("qparams");
    args.exactly::<0>()?;
    Ok(Command::Convert { qparams })
}

fn print_convert(cmd: &Command, line: &mut Line) -> bool {
    let Command::Convert { qparams } = cmd else {
        return false;
    };
    if let Some(q) = qparams {
        line.option("qparams", q);
    }
    true
}

pub(super) const QUANTIZE: VerbSpec = VerbSpec {
    name: "quantize",
    usage: "quantize DATA [batch=32] [batches=N] | quantize dynamic [dtype=qint8|float16]",
    summary: "one call: fuse auto, prepare, calibrate on DATA, convert; or dynamic quantization \
         of nn.Linear modules and LSTM (F.linear calls only when a qconfig path names them)",
    details: Details::None,
    forms: &[
        Form::new(&[Word::Dataset], &BATCHING),
        Form::new(
            &[Word::Keyword(&["dynamic"])],
            &[opt("dtype", Word::Keyword(&["qint8", "float16"]))],
        ),
    ],
    parse: parse_quantize,
    print: print_quantize,
};

fn parse_quantize(args: &mut Args) -> Result<Command, SessionError> {
    if args.object() == "dynamic" {
        let float16 = args.switch("dtype", false)?;
        args.exactly::<1>()?;
        return Ok(Command::QuantizeDynamic { float16 });
    }
    let batching = args.batching()?;
    let [data] = args.exactly::<1>()?;
    Ok(Command::Quantize { data, batching })
}

fn print_quantize(cmd: &Command, line: &mut Line) -> bool {
    match cmd {
        Command::Quantize { data, batching } => {
            line.arg(data).batching(batching);
        }
        Command::QuantizeDynamic { float16 } => {
            line.word("dynamic").switch("dtype", *float16, false);
        }
        _ => return false,
    }
    true
}

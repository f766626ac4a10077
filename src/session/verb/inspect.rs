//! The verbs that look at the model without changing it: `show`, `eval`, `predict`, `expect`
//! (which fails a replay unless a metric holds) and `help`.

use super::args::{Args, Line};
use super::{Details, Form, VerbSpec, Word, opt};
use crate::session::command::{CmpOp, Expectation, Metric, ModelChoice};
use crate::session::{Command, SessionError};

pub(super) const SHOW: VerbSpec = VerbSpec {
    name: "show",
    usage: "show model | show qparams",
    summary: "list the model's layers, or the observers' statistics and qparams (after prepare / convert)",
    details: Details::None,
    forms: &[Form::new(&[Word::Keyword(&["model", "qparams"])], &[])],
    parse: parse_show,
    print: print_show,
};

fn parse_show(args: &mut Args) -> Result<Command, SessionError> {
    let cmd = match args.object().as_str() {
        "model" => Command::ShowModel,
        "qparams" => Command::ShowQParams,
        _ => return Err(args.unknown_object()),
    };
    args.exactly::<1>()?;
    Ok(cmd)
}

fn print_show(cmd: &Command, line: &mut Line) -> bool {
    match cmd {
        Command::ShowModel => line.word("model"),
        Command::ShowQParams => line.word("qparams"),
        _ => return false,
    };
    true
}

pub(super) const EVAL: VerbSpec = VerbSpec {
    name: "eval",
    usage: "eval DATA",
    summary: "top-1 accuracy of the float model on a labelled dataset",
    details: Details::None,
    forms: &[Form::new(&[Word::Dataset], &[])],
    parse: parse_eval,
    print: print_eval,
};

fn parse_eval(args: &mut Args) -> Result<Command, SessionError> {
    let [data] = args.exactly::<1>()?;
    Ok(Command::Eval { data })
}

fn print_eval(cmd: &Command, line: &mut Line) -> bool {
    let Command::Eval { data } = cmd else {
        return false;
    };
    line.arg(data);
    true
}

pub(super) const PREDICT: VerbSpec = VerbSpec {
    name: "predict",
    usage: "predict DATA out=FILE.npy | predict DATA out=FILE.npy model=float|quantized",
    summary: "run the float model (or the converted one: model=quantized) on a dataset and write its outputs (dequantized) as .npy",
    details: Details::None,
    forms: &[Form::new(
        &[Word::Dataset],
        &[
            opt("out", Word::Path),
            opt("model", Word::Keyword(&["float", "quantized"])),
        ],
    )],
    parse: parse_predict,
    print: print_predict,
};

fn parse_predict(args: &mut Args) -> Result<Command, SessionError> {
    let out = args
        .option("out")
        .ok_or_else(|| args.error("predict needs out=FILE.npy"))?;
    let model = args
        .keyword("model")?
        .and_then(ModelChoice::parse)
        .unwrap_or_default();
    let [data] = args.exactly::<1>()?;
    Ok(Command::Predict { data, out, model })
}

fn print_predict(cmd: &Command, line: &mut Line) -> bool {
    let Command::Predict { data, out, model } = cmd else {
        return false;
    };
    line.arg(data).option("out", out).option_unless(
        "model",
        model.name(),
        ModelChoice::Float.name(),
    );
    true
}

pub(super) const EXPECT: VerbSpec = VerbSpec {
    name: "expect",
    usage: "expect accuracy(DATA) >= 0.98 | correct(DATA) | quantized_accuracy(DATA) | quantized_correct(DATA) | agreement(DATA) | sqnr(DATA,LAYER) | output_sqnr(DATA) | saturated(DATA[,LAYER])",
    summary: "fail the replay unless the comparison holds",
    // The formulas a user reads here are the ones `Workbench::expect` computes.
    details: Details::Text(
        "metrics:
  accuracy(DATA), correct(DATA)                      the float model on labelled DATA
  quantized_accuracy(DATA), quantized_correct(DATA)  the converted model on labelled DATA
  agreement(DATA)                                    fraction of samples whose top-1 class agrees
  sqnr(DATA,LAYER)                                   cumulative output SQNR (dB) of LAYER
  output_sqnr(DATA)                                  SQNR (dB) of the model's output against
                                                     float's (search's sqnr target; also when
                                                     the last layer is kept in float)
  saturated(DATA,LAYER), saturated(DATA)             int16 pair saturations of LAYER, or of all
                                                     layers, over DATA (cumulative; help errors)
the error table behind sqnr and saturated is computed once per dataset and kept until a command
changes the model, data, qconfig, observers or engine",
    ),
    forms: &[Form::new(
        &[Word::Metric, Word::Comparison, Word::Text],
        &[],
    )],
    parse: parse_expect,
    print: print_expect,
};

fn parse_expect(args: &mut Args) -> Result<Command, SessionError> {
    let n = args.positional.len();
    if n < 3 {
        return Err(args.error(format!(
            "'expect' takes METRIC OP NUMBER, got {n} argument(s)"
        )));
    }
    // Spaces inside a metric's parentheses are insignificant: `saturated(test, conv1)`.
    let metric = args.positional[..n - 2].concat();
    let (op, value) = (&args.positional[n - 2], &args.positional[n - 1]);
    let (name, inner) = metric
        .as_str()
        .strip_suffix(')')
        .and_then(|m| m.split_once('('))
        .ok_or_else(|| args.error(format!("'{metric}' is not METRIC(DATA)")))?;
    // The metric is written back as one unquoted token, so its names must survive that.
    if let Some(c) = inner
        .chars()
        .find(|c| c.is_whitespace() || "()#\"".contains(*c))
    {
        return Err(args.error(format!(
            "'{metric}': names in a metric cannot hold {c:?} (spaces, parentheses, '#')"
        )));
    }
    let data = inner.to_string();
    let metric = match name {
        "accuracy" => Metric::Accuracy { data },
        "correct" => Metric::Correct { data },
        "quantized_accuracy" => Metric::QuantizedAccuracy { data },
        "quantized_correct" => Metric::QuantizedCorrect { data },
        "agreement" => Metric::Agreement { data },
        "output_sqnr" => Metric::OutputSqnr { data },
        "sqnr" => {
            let (data, layer) = data
                .split_once(',')
                .ok_or_else(|| args.error("sqnr takes (DATA,LAYER)"))?;
            Metric::Sqnr {
                data: data.into(),
                layer: layer.into(),
            }
        }
        "saturated" => {
            let (data, layer) = match data.split_once(',') {
                Some((d, l)) => (d.into(), Some(l.into())),
                None => (data, None),
            };
            Metric::Saturated { data, layer }
        }
        other => {
            return Err(args.error(format!(
                "unknown metric '{other}' ({})",
                Metric::NAMES.join(", ")
            )));
        }
    };
    let op =
        CmpOp::parse(op).ok_or_else(|| args.error(format!("'{op}' is not one of >= > <= < ==")))?;
    let value = value
        .parse()
        .map_err(|_| args.error(format!("'{value}' is not a number")))?;
    Ok(Command::Expect(Expectation { metric, op, value }))
}

fn print_expect(cmd: &Command, line: &mut Line) -> bool {
    let Command::Expect(e) = cmd else {
        return false;
    };
    // Checked at parse time to need no quotes.
    line.word(e);
    true
}

pub(super) const HELP: VerbSpec = VerbSpec {
    name: "help",
    usage: "help [VERB]",
    summary: "this list, or one verb's usage",
    details: Details::None,
    forms: &[Form::new(&[Word::Verb], &[])],
    parse: parse_help,
    print: print_help,
};

fn parse_help(args: &mut Args) -> Result<Command, SessionError> {
    Ok(Command::Help {
        verb: args.positional.first().cloned(),
    })
}

fn print_help(cmd: &Command, line: &mut Line) -> bool {
    let Command::Help { verb } = cmd else {
        return false;
    };
    if let Some(v) = verb {
        line.arg(v);
    }
    true
}

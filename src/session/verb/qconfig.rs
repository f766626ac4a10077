//! `qconfig`: which modules get which QConfig — a preset, explicit activation and weight
//! specs, one half of them, or none (kept in float) — globally, by module path or glob, or by
//! module type. Its help lists the observers and options the spec parser knows.

use super::args::{Args, Line};
use super::{Details, Form, VerbSpec, Word, opt};
use crate::qconfig::{QConfig, QuantizerSpec};
use crate::session::command::QConfigChoice;
use crate::session::{Command, SessionError};
use crate::workflow::QConfigKey;

pub(super) const QCONFIG: VerbSpec = VerbSpec {
    name: "qconfig",
    usage: "qconfig *|PATH|GLOB|type=CLASS preset=NAME | [activation=SPEC] [weight=SPEC] | none",
    summary: "assign a qconfig globally, to modules by path or glob, or by type; none keeps float",
    details: Details::Built(grammar),
    forms: &[
        Form::new(
            &[Word::Target],
            &[
                opt("preset", Word::Preset),
                opt("activation", Word::Quantizer),
                opt("weight", Word::Quantizer),
            ],
        ),
        Form::new(&[Word::Target, Word::Keyword(&["none"])], &[]),
    ],
    parse: parse_qconfig,
    print: print_qconfig,
};

/// The SPEC grammar, listing the observers and options the parser knows.
fn grammar() -> String {
    let observers: Vec<&str> = crate::observer::ALL_KINDS
        .iter()
        .map(|k| k.name())
        .collect();
    let options: Vec<&str> = crate::observer::option_names().collect();
    format!(
        "SPEC is an observer, OBSERVER or OBSERVER(option=value, ...), or a fake-quant around
one, fake_quant(OBSERVER(...)) or fused_fake_quant(OBSERVER(...)); quote a SPEC with spaces.
  observers  {}
  options    {}
Either half alone (qconfig conv1 activation=entropy) keeps the other half the target has now.
  qconfig * preset=qnnpack
  qconfig features.* activation=\"histogram(bins=2048, reduce_range=true)\"
  qconfig type=Linear weight=\"per_channel_minmax(dtype=qint8, qscheme=per_channel_symmetric)\"",
        observers.join(", "),
        options.join(", ")
    )
}

fn parse_qconfig(args: &mut Args) -> Result<Command, SessionError> {
    let type_key = args.option("type");
    let preset = args.option("preset");
    let activation = args.option("activation");
    let weight = args.option("weight");
    let mut positional = args.positional.clone();
    let key = match type_key {
        Some(t) => QConfigKey::Type(t),
        None if positional.is_empty() => {
            return Err(
                args.error("qconfig needs a target: *, a module path or glob, or type=CLASS")
            );
        }
        None => match positional.remove(0) {
            star if star == "*" => QConfigKey::Global,
            path => QConfigKey::Path(path),
        },
    };
    let choice = match (preset, activation, weight, positional.as_slice()) {
        (Some(p), None, None, []) => QConfigChoice::Preset(p),
        (None, Some(a), Some(w), []) => QConfigChoice::Custom(
            format!("activation={a} weight={w}")
                .parse::<QConfig>()
                .map_err(|e| args.error(e))?,
        ),
        (None, Some(a), None, []) => QConfigChoice::Half {
            activation: Some(half(args, "activation", &a)?),
            weight: None,
        },
        (None, None, Some(w), []) => QConfigChoice::Half {
            activation: None,
            weight: Some(half(args, "weight", &w)?),
        },
        (None, None, None, [none]) if none == "none" => QConfigChoice::None,
        _ => {
            return Err(args
                .error("qconfig takes preset=NAME, activation=SPEC and/or weight=SPEC, or none"));
        }
    };
    // Presets are resolved now so a typo fails on its own line (a half is checked by `half`).
    if !matches!(choice, QConfigChoice::Half { .. }) {
        choice.resolve(None).map_err(|e| args.error(e))?;
    }
    Ok(Command::QConfig { key, choice })
}

/// One half of a qconfig (`activation=SPEC` or `weight=SPEC`), parsed and checked.
fn half(args: &Args, field: &'static str, text: &str) -> Result<QuantizerSpec, SessionError> {
    let spec: QuantizerSpec = text
        .parse()
        .map_err(|e| args.error(format!("{field}: {e}")))?;
    spec.validate()
        .map_err(|e| args.error(format!("invalid qconfig {field}: {e}")))?;
    Ok(spec)
}

fn print_qconfig(cmd: &Command, line: &mut Line) -> bool {
    let Command::QConfig { key, choice } = cmd else {
        return false;
    };
    match key {
        QConfigKey::Global => line.word("*"),
        QConfigKey::Type(t) => line.option("type", t),
        QConfigKey::Path(p) => line.arg(p),
    };
    match choice {
        QConfigChoice::Preset(name) => {
            line.option("preset", name);
        }
        QConfigChoice::Custom(q) => {
            line.option("activation", &q.activation)
                .option("weight", &q.weight);
        }
        QConfigChoice::Half { activation, weight } => {
            if let Some(a) = activation {
                line.option("activation", a);
            }
            if let Some(w) = weight {
                line.option("weight", w);
            }
        }
        QConfigChoice::None => {
            line.word("none");
        }
    }
    true
}

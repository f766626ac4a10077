//! `help` and `help VERB`, read from the verb table: the list is one summary line per verb,
//! and one verb's help is its usage, its summary and the details its entry keeps (the error
//! columns' formulas, the `expect` metrics, the observers `qconfig` knows).

use super::verb::{self, VERBS};
use super::{Output, SessionError, Table};

pub(super) fn help(verb: Option<&str>) -> Result<Output, SessionError> {
    let Some(v) = verb else {
        return Ok(Output::Table {
            title: "verbs (help VERB for one):".into(),
            table: Table {
                headers: vec!["verb".into(), "what it does".into()],
                rows: VERBS
                    .iter()
                    .map(|s| vec![s.name.to_string(), s.summary.to_string()])
                    .collect(),
            },
        });
    };
    let spec = verb::find(v).ok_or_else(|| SessionError::UnknownVerb {
        verb: v.to_string(),
        known: super::suggest::listing(v, &verb::names(), "verbs"),
    })?;
    let mut text = format!("{}\n  {}", spec.usage, spec.summary);
    if let Some(more) = spec.details.text() {
        text.push_str(&format!("\n{more}"));
    }
    Ok(Output::Text(text))
}

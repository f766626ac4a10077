//! What a command returns. Front ends only render `Output`s; the plain-text rendering here is
//! what `qlab run` prints and what sessions replay byte for byte.

use std::fmt;

/// A table with a header row; cells are already formatted.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A header row from column names.
    pub fn header_row(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }
}

/// The result of one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Nothing to show.
    None,
    /// A line or paragraph of text.
    Text(String),
    /// A titled table.
    Table { title: String, table: Table },
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = self.headers.len();
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .chain([self.headers[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            let text: Vec<String> = (0..cols)
                .map(|c| {
                    format!(
                        "{:<w$}",
                        cells.get(c).map_or("", String::as_str),
                        w = width[c]
                    )
                })
                .collect();
            writeln!(f, "{}", text.join("  ").trim_end())
        };
        line(f, &self.headers)?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::None => Ok(()),
            Output::Text(t) => writeln!(f, "{t}"),
            Output::Table { title, table } => write!(f, "{title}\n{table}"),
        }
    }
}

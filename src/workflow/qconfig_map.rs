//! Which qconfig each module gets: PyTorch's `qconfig_dict` and `propagate_qconfig_`.
//!
//! Entries are a global qconfig, per op type (`Conv2d`, `Linear`, or qlab's op kinds such as
//! `Conv`, `Add`), and per module path or glob (`features.*.conv`). `None` keeps a module in
//! float. As in PyTorch, a path entry applies to the module and everything below it, the most
//! specific path wins, a type entry beats what a module inherits from its parents but not an
//! entry for its own path, and a later entry replaces an earlier one for the same key.

use super::WorkflowError;
use super::modules::{class_of, kind_of, producers};
use crate::graph::Graph;
use crate::qconfig::QConfig;
use std::collections::BTreeMap;
use std::fmt;

/// What a qconfig entry is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QConfigKey {
    /// Every module without a more specific entry.
    Global,
    /// Modules of one class (`Conv2d`) or op kind (`Conv`), compared case-insensitively.
    Type(String),
    /// A module path or a glob over paths (`*` matches any run of characters, dots included).
    Path(String),
}

impl fmt::Display for QConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QConfigKey::Global => f.write_str("global"),
            QConfigKey::Type(t) => write!(f, "type={t}"),
            QConfigKey::Path(p) => f.write_str(p),
        }
    }
}

/// An ordered list of qconfig entries (`None` = keep in float).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QConfigMap {
    pub entries: Vec<(QConfigKey, Option<QConfig>)>,
}

/// `*` matches any run of characters; everything else literally.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// `path` and its ancestors, shortest first: `a.b.c` → `a`, `a.b`, `a.b.c`.
fn ancestry(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('.')
        .map(|(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

impl QConfigMap {
    /// A map with one global entry.
    pub fn global(qconfig: QConfig) -> QConfigMap {
        QConfigMap {
            entries: vec![(QConfigKey::Global, Some(qconfig))],
        }
    }

    /// Adds (or replaces) the entry for `key`.
    pub fn set(&mut self, key: QConfigKey, qconfig: Option<QConfig>) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, qconfig));
    }

    fn lookup(&self, want: impl Fn(&QConfigKey) -> bool) -> Option<&Option<QConfig>> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| want(k))
            .map(|(_, q)| q)
    }

    /// Every node's qconfig (`None`: float), after checking that every path and type entry
    /// names something in the model.
    pub fn resolve(
        &self,
        graph: &Graph,
    ) -> Result<BTreeMap<String, Option<QConfig>>, WorkflowError> {
        let prod = producers(graph);
        let types: Vec<(String, Option<String>)> = graph
            .nodes
            .iter()
            .map(|n| (kind_of(n).to_string(), class_of(graph, &prod, n)))
            .collect();
        for (key, _) in &self.entries {
            match key {
                QConfigKey::Global => {}
                QConfigKey::Type(t) => {
                    let hit = types.iter().any(|(kind, class)| {
                        kind.eq_ignore_ascii_case(t)
                            || class.as_ref().is_some_and(|c| c.eq_ignore_ascii_case(t))
                    });
                    if !hit {
                        return Err(WorkflowError::NoTypeMatch {
                            type_name: t.clone(),
                        });
                    }
                }
                QConfigKey::Path(p) => {
                    let hit = graph
                        .nodes
                        .iter()
                        .any(|n| ancestry(&n.name).any(|a| glob_match(p, a)));
                    if !hit {
                        let mut known: Vec<&str> = graph
                            .nodes
                            .iter()
                            .map(|n| n.name.as_str())
                            .take(12)
                            .collect();
                        if graph.nodes.len() > known.len() {
                            known.push("...");
                        }
                        return Err(WorkflowError::NoMatch {
                            pattern: p.clone(),
                            known: known.join(", "),
                        });
                    }
                }
            }
        }
        let global = self.lookup(|k| *k == QConfigKey::Global).cloned().flatten();
        Ok(graph
            .nodes
            .iter()
            .zip(&types)
            .map(|(node, (kind, class))| {
                let mut q = global.clone();
                for prefix in ancestry(&node.name) {
                    if prefix == node.name
                        && let Some(t) = self.lookup(|k| match k {
                            QConfigKey::Type(t) => {
                                kind.eq_ignore_ascii_case(t)
                                    || class.as_ref().is_some_and(|c| c.eq_ignore_ascii_case(t))
                            }
                            _ => false,
                        })
                    {
                        q = t.clone();
                    }
                    if let Some(p) = self.lookup(|k| match k {
                        QConfigKey::Path(p) => glob_match(p, prefix),
                        _ => false,
                    }) {
                        q = p.clone();
                    }
                }
                (node.name.clone(), q)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_paths() {
        assert!(glob_match("features.*.conv", "features.3.conv"));
        assert!(glob_match("*", "fc"));
        assert!(glob_match("layer1*", "layer1.0.conv1"));
        assert!(!glob_match("features.*.conv", "features.3.conv.0"));
        assert!(!glob_match("fc", "fc2"));
        assert_eq!(ancestry("a.b.c").collect::<Vec<_>>(), ["a", "a.b", "a.b.c"]);
    }
}

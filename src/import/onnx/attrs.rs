//! Typed access to a node's attributes, with errors that name the node, op and attribute.

use super::proto::{AttributeProto, NodeProto};
use super::tensor::to_value;
use crate::graph::Value;
use crate::import::ImportError;

/// A node's attributes plus the identity used in error messages.
pub struct Attrs<'a> {
    pub node: String,
    pub op_type: String,
    list: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto, display_name: &str) -> Self {
        Attrs {
            node: display_name.to_string(),
            op_type: node.op_type.clone().unwrap_or_default(),
            list: &node.attribute,
        }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.list.iter().find(|a| a.name.as_deref() == Some(name))
    }

    /// An error for attribute `name`.
    pub fn unsupported(&self, name: &str, detail: impl Into<String>) -> ImportError {
        ImportError::UnsupportedAttribute {
            node: self.node.clone(),
            op_type: self.op_type.clone(),
            attribute: name.into(),
            detail: detail.into(),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).and_then(|a| a.f).unwrap_or(default)
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    pub fn strings(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    }

    pub fn tensor(&self, name: &str) -> Result<Option<Value>, ImportError> {
        self.get(name)
            .and_then(|a| a.t.as_ref())
            .map(to_value)
            .transpose()
    }

    /// Non-negative integer list attribute (sizes, strides, pads), defaulting to `default`.
    pub fn sizes(&self, name: &str, default: Vec<usize>) -> Result<Vec<usize>, ImportError> {
        match self.ints(name) {
            None => Ok(default),
            Some(v) => v
                .iter()
                .map(|&x| {
                    usize::try_from(x)
                        .map_err(|_| self.unsupported(name, format!("negative value {x}")))
                })
                .collect(),
        }
    }

    /// Rejects any attribute outside `known`, so a semantic we ignore is never silently dropped.
    pub fn only(&self, known: &[&str]) -> Result<(), ImportError> {
        match self
            .list
            .iter()
            .filter_map(|a| a.name.as_deref())
            .find(|n| !known.contains(n))
        {
            Some(n) => Err(self.unsupported(n, "not implemented by qlab")),
            None => Ok(()),
        }
    }
}

//! How op attributes look in `graph.json` where serde's derived form is not the file's: a
//! tensor is written elsewhere (the native format's weights file), so an optional one shows only
//! whether it is there and an LSTM only how many directions it has; Clip bounds may be infinite,
//! which JSON numbers cannot say; a Unary or Binary function sits under `f`. These are
//! `#[serde(with = ...)]` modules for [`super::Op`]'s fields and variants, and they keep the
//! version-1 JSON shape of the native format (see `crate::import::native`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An optional tensor as `true` / `false`. Reading gives an empty placeholder for `true`,
/// which the loader replaces with the stored tensor ([`super::Op::params_mut`]).
pub mod present {
    use super::*;

    pub fn serialize<T, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(v.is_some())
    }

    pub fn deserialize<'de, T: Default, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        Ok(bool::deserialize(d)?.then(T::default))
    }
}

/// An LSTM's directions as their count, read back as that many placeholders. A count above 2
/// is refused here rather than by the graph check, because it sizes an allocation; 0 is left
/// to the graph check, which names the node.
pub mod direction_count {
    use super::*;
    use crate::graph::LstmDirection;

    pub fn serialize<S: Serializer>(v: &[LstmDirection], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.len() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LstmDirection>, D::Error> {
        match u64::deserialize(d)? {
            n @ 0..=2 => Ok(vec![LstmDirection::default(); n as usize]),
            n => Err(serde::de::Error::custom(format!(
                "an LSTM has 1 or 2 directions, not {n}"
            ))),
        }
    }
}

/// [`crate::graph::LinearCall`] as the `functional` flag (absent for a module call, which is
/// what files written before the flag existed hold).
pub mod functional {
    use super::*;
    use crate::graph::LinearCall;

    pub fn serialize<S: Serializer>(v: &LinearCall, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*v == LinearCall::Functional)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LinearCall, D::Error> {
        Ok(if bool::deserialize(d)? {
            LinearCall::Functional
        } else {
            LinearCall::Module
        })
    }

    /// Whether the flag is left out.
    pub fn is_module(v: &LinearCall) -> bool {
        *v == LinearCall::Module
    }
}

/// A float that may be infinite or NaN: a JSON number when finite, else `"inf"`, `"-inf"` or
/// `"nan"`.
pub mod any_f32 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Form {
        Finite(f32),
        Special(String),
    }

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            Form::Finite(*v)
        } else {
            Form::Special(v.to_string().to_lowercase())
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        match Form::deserialize(d)? {
            Form::Finite(v) => Ok(v),
            Form::Special(s) => s.parse().map_err(|_| {
                serde::de::Error::custom(format!("'{s}' is not a number (nor inf, -inf, nan)"))
            }),
        }
    }
}

/// A newtype variant's value under the key `f` (`{"op": "unary", "f": "Erf"}`): an internally
/// tagged enum cannot hold a bare string or enum beside its tag.
pub mod under_f {
    use super::*;

    #[derive(Serialize)]
    struct Out<'a, T> {
        f: &'a T,
    }

    #[derive(Deserialize)]
    struct In<T> {
        f: T,
    }

    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        Out { f: v }.serialize(s)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        Ok(In::deserialize(d)?.f)
    }
}

/// ConstantOfShape's value before the loader restores it.
pub fn placeholder_value() -> crate::graph::Value {
    crate::graph::Value::F32(Default::default())
}

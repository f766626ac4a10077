//! Fresh node names: `base`, else `base_1`, `base_2`, ... — the de-duplication PyTorch's
//! functional names follow (`add`, `add_1`). Each base remembers the next suffix to try, so a
//! chain of thousands of same-kind nodes is named in linear time, not quadratic.

use std::collections::{HashMap, HashSet};

/// The names taken so far and, per base, the next suffix to try.
#[derive(Debug, Default, Clone)]
pub struct FreshNames {
    taken: HashSet<String>,
    next: HashMap<String, usize>,
}

impl FreshNames {
    /// Starts with `existing` names taken.
    pub fn new(existing: impl IntoIterator<Item = String>) -> FreshNames {
        FreshNames {
            taken: existing.into_iter().collect(),
            next: HashMap::new(),
        }
    }

    /// Claims `base` or its first free `base_k`. Names are never released, so every suffix
    /// below the remembered one is still taken and skipping them gives the same answer.
    pub fn claim(&mut self, base: &str) -> String {
        if self.taken.insert(base.to_string()) {
            return base.to_string();
        }
        let k = self.next.entry(base.to_string()).or_insert(1);
        loop {
            let name = format!("{base}_{k}");
            *k += 1;
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FreshNames;

    #[test]
    fn suffixes_skip_taken_names_in_order() {
        let mut f = FreshNames::new(["add_1".to_string()]);
        assert_eq!(f.claim("add"), "add");
        assert_eq!(f.claim("add"), "add_2");
        assert_eq!(f.claim("add_2"), "add_2_1");
        assert_eq!(f.claim("add"), "add_3");
        assert_eq!(f.claim("relu"), "relu");
    }
}

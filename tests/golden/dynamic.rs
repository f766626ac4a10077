//! Golden checks for `dynamic.json`: dynamic Linear and LSTM (kinds are added as implemented).

use super::Check;

pub fn check_for(_kind: &str) -> Option<Check> {
    None
}

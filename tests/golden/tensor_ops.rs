//! Golden checks for this area; kinds are added as the area is implemented.

use super::Check;

pub fn check_for(_kind: &str) -> Option<Check> {
    None
}

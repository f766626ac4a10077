//! One file per pane (and popup); each draws from `&App` into the area it is given.

pub mod diagnosis;
pub mod errors;
pub mod help;
pub mod histogram;
pub mod int_repr;
pub mod layers;
pub mod log;
pub mod speed;

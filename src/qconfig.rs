//! QConfig presets: placeholder until the qconfig slice lands.

//! Observers: placeholder until the observer slice lands.

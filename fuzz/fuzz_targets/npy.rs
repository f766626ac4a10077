#![no_main]
//! `.npy` bytes: the header parser and the data reader never panic or over-allocate, and what
//! they accept builds a dataset or a typed error.

use libfuzzer_sys::fuzz_target;
use qlab::import::Dataset;
use qlab::import::npy::{parse_npy, parse_npy_f64};

fuzz_target!(|data: &[u8]| {
    let _ = parse_npy_f64(data, "fuzz.npy");
    if let Ok(v) = parse_npy(data, "fuzz.npy") {
        let labels = parse_npy(data, "labels.npy").ok().map(|l| (l, "labels.npy"));
        let _ = Dataset::from_values("fuzz", v, labels, "fuzz.npy");
    }
});

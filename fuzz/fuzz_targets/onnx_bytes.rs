#![no_main]
//! Raw bytes as an ONNX file: import never panics or over-allocates; a model that imports is
//! run float and int8 ([`qlab_fuzz::exercise`]).

use libfuzzer_sys::fuzz_target;
use qlab::import::onnx::import_onnx_bytes;

fuzz_target!(|data: &[u8]| {
    if let Ok(graph) = import_onnx_bytes(data, "fuzz.onnx") {
        qlab_fuzz::exercise(&graph);
    }
});

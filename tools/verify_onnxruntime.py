#!/usr/bin/env python3
"""Run qlab's QDQ export (`export model out=M.int8.onnx`) in ONNX Runtime and compare its
logits with qlab's own int8 logits (`predict DATA out=Q.npy model=quantized`).

ONNX Runtime runs the file twice: with its graph optimisations (the default: Q/DQ patterns
fused into QLinearConv / QGemm / QLinearAdd ... integer kernels) and without them (every
DequantizeLinear / float op / QuantizeLinear computed as written: the float simulation). Neither
is fbgemm's or qnnpack's arithmetic, so the logits come close to qlab's, not bit for bit; this
prints how close: top-1 agreement, SQNR (dB) and the share of identical logits.

Usage:
    pip install onnxruntime numpy
    python3 tools/verify_onnxruntime.py M.int8.onnx INPUTS.npy QLAB_LOGITS.npy [--batch 32]

Not run by CI (CI needs no Python); see the README's "Taking a model out" section.
"""

import argparse
import sys

import numpy as np


def sqnr(reference, other):
    noise = np.sum((reference.astype(np.float64) - other) ** 2)
    signal = np.sum(reference.astype(np.float64) ** 2)
    return float("inf") if noise == 0 else 10.0 * np.log10(signal / noise)


def run(model, inputs, batch, optimise):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    if not optimise:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed = session.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) else batch
    outs = [
        session.run(None, {name: inputs[i : i + step]})[0]
        for i in range(0, len(inputs), step)
    ]
    return np.concatenate(outs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="qlab's QDQ export (.onnx)")
    p.add_argument("inputs", help="the inputs qlab predicted on (.npy)")
    p.add_argument("qlab", help="qlab's int8 logits on them (.npy, predict ... model=quantized)")
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args()
    inputs = np.load(a.inputs)
    if inputs.dtype == np.float64:
        inputs = inputs.astype(np.float32)
    qlab = np.load(a.qlab)
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, {len(inputs)} inputs, {a.model}")
    for label, optimise in [("ORT integer kernels", True), ("ORT float simulation", False)]:
        ort_logits = run(a.model, inputs, a.batch, optimise)
        if ort_logits.shape != qlab.shape:
            sys.exit(f"shape mismatch: ORT {ort_logits.shape}, qlab {qlab.shape}")
        agree = np.mean(ort_logits.argmax(-1) == qlab.argmax(-1))
        same = np.mean(ort_logits == qlab)
        diff = np.max(np.abs(ort_logits - qlab))
        print(
            f"{label:22} vs qlab: top-1 agreement {agree:.4f}, SQNR {sqnr(qlab, ort_logits):.2f} dB, "
            f"identical logits {same:.4f}, max |diff| {diff:.4g}"
        )


if __name__ == "__main__":
    main()

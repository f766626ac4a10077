#!/usr/bin/env python3
"""Measures PyTorch on the shapes `qlab bench` measures and writes the peer file that
`qlab bench --against FILE.json` and `qlab bench model --against FILE.json` read.

Run it on the host you run qlab on, in the same sitting: a ratio between figures from two
machines (or two thermal states of one) says nothing. qlab refuses ratios when the file's CPU
model differs from the host's, or when PyTorch ran on more than one thread (qlab's latencies are
single-threaded).

    python3 tools/torch_bench.py --out peer.json            # linear and conv shapes
    qlab bench --against peer.json

Needs only torch. Figures are medians of --reps timed runs after one warm-up, batch 1:
  linear_gops  static quantized Linear (torch.ao, fbgemm engine, quint8 in and out), dynamic
               quantized Linear, fp32 Linear; 2*M*N*K operations per run.
  conv_gops    static quantized Conv2d (fbgemm) and fp32 Conv2d, stride 1, same padding.
  models_ms    left as the file had it: fill it from your own timing of your PyTorch module
               (see `median_ms` below and the README's snippet), keyed by the model's file stem
               (or a prefix of it) and engine: fp32, fbgemm, qnnpack, calibration_per_image.

The shape lists must match qlab's (src/bench.rs ANCHORS and CONV_ANCHORS): qlab rejects a file
naming a shape it does not measure.
"""

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import torch
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd

SCHEMA_VERSION = 1

# (M, K, N): y = x . W^T with x M x K and W N x K.
LINEAR_SHAPES = [(1, 768, 768), (64, 768, 3072), (256, 1024, 1024), (1024, 1024, 1024)]
# (C, H=W, O, k): batch 1, stride 1, padding k // 2.
CONV_SHAPES = [(64, 56, 64, 3), (256, 14, 256, 3), (32, 112, 32, 1)]


def host_cpu():
    """/proc/cpuinfo's first "model name", whitespace collapsed, as qlab reads it; else unknown."""
    if platform.system() == "Linux":
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key.strip() == "model name" and value.strip():
                        return " ".join(value.split())
        except OSError:
            pass
    return "unknown"


def median_ms(fn, *args, reps=5):
    """Median wall time of fn(*args) in ms over `reps` runs after one warm-up, without autograd.

    Use it for the models section: median_ms(model, x) for fp32, then for your converted
    int8 model; time calibration yourself and divide by the number of images."""
    with torch.inference_mode():
        fn(*args)
        times = []
        for _ in range(max(reps, 1)):
            t = time.perf_counter()
            fn(*args)
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def gops(ops, ms):
    return ops / (ms * 1e-3) / 1e9


def linear_figures(m, k, n, reps):
    torch.manual_seed(0)
    x = torch.rand(m, k)
    w = torch.randn(n, k) * 0.05
    b = torch.full((n,), 0.5)
    fp32 = torch.nn.Linear(k, n)
    with torch.no_grad():
        fp32.weight.copy_(w)
        fp32.bias.copy_(b)
    qw = torch.quantize_per_tensor(w, 0.01, 0, torch.qint8)
    static = nnq.Linear(k, n)
    static.set_weight_bias(qw, b)
    static.scale, static.zero_point = 0.2, 128
    # quint8 activations below 128 (7 bits), as fbgemm's default qconfig (reduce_range) makes
    # them and as qlab's fbgemm figures use: fbgemm's speed depends on it.
    qx = torch.quantize_per_tensor(x, 0.02, 0, torch.quint8)
    dynamic = nnqd.Linear(k, n)
    dynamic.set_weight_bias(qw, b)
    ops = 2 * m * n * k
    return {
        "fbgemm": gops(ops, median_ms(static, qx, reps=reps)),
        "fbgemm_dynamic": gops(ops, median_ms(dynamic, x, reps=reps)),
        "fp32": gops(ops, median_ms(fp32, x, reps=reps)),
    }


def conv_figures(c, hw, o, k, reps):
    torch.manual_seed(0)
    x = torch.rand(1, c, hw, hw)
    fp32 = torch.nn.Conv2d(c, o, k, padding=k // 2)
    static = nnq.Conv2d(c, o, k, padding=k // 2)
    qw = torch.quantize_per_tensor(fp32.weight.detach(), 0.01, 0, torch.qint8)
    static.set_weight_bias(qw, fp32.bias.detach())
    static.scale, static.zero_point = 0.2, 128
    qx = torch.quantize_per_tensor(x, 0.02, 0, torch.quint8)
    ops = 2 * o * c * k * k * hw * hw
    return {
        "fbgemm": gops(ops, median_ms(static, qx, reps=reps)),
        "fp32": gops(ops, median_ms(fp32, x, reps=reps)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="peer.json", help="the file to write (models_ms kept)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (qlab compares against 1 only)"
    )
    args = parser.parse_args()
    # torch.ao's quantized tensors are deprecated in recent releases; they are what is measured.
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "fbgemm"
    models = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            models = json.load(f).get("models_ms", {})
    peer = {
        "schema_version": SCHEMA_VERSION,
        "host": {"cpu": host_cpu(), "threads": torch.get_num_threads()},
        "torch_version": torch.__version__,
        "linear_gops": {},
        "conv_gops": {},
        "models_ms": models,
    }
    for m, k, n in LINEAR_SHAPES:
        name = f"{m}x{k}x{n}"
        peer["linear_gops"][name] = linear_figures(m, k, n, args.reps)
        print(name, peer["linear_gops"][name], flush=True)
    for c, hw, o, k in CONV_SHAPES:
        name = f"{c}x{hw}x{hw}->{o} {k}x{k}"
        peer["conv_gops"][name] = conv_figures(c, hw, o, k, args.reps)
        print(name, peer["conv_gops"][name], flush=True)
    with open(args.out, "w") as f:
        # allow_nan=False: JSON has no NaN, and qlab refuses a figure that is not finite.
        json.dump(peer, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {args.out} ({peer['host']['cpu']}, torch {peer['torch_version']})")


if __name__ == "__main__":
    main()

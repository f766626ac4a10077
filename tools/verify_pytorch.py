#!/usr/bin/env python3
"""Checks qlab's `export pytorch` in PyTorch: builds the float model in PyTorch with the ONNX
file's weights, runs the eager user flow with the exported script (eval, fuse, the engine's
default qconfig, prepare, apply — no calibration — convert), runs the inputs and compares the
logits with qlab's own (`predict DATA out=F.npy model=quantized`).

    python3 tools/verify_pytorch.py --apply OUT/apply_qlab.py --model shufflenet_v2_x0_5 \\
        --onnx ZOO/shufflenet_v2_x0_5.onnx --inputs ZOO/test.npy --qlab OUT/qlab_logits.npy

--model is a torchvision quantizable network (torchvision.models.quantization.NAME, built
with weights=None, quantize=False; its weights come from the BN-kept legacy ONNX export, whose
initializers are named by state_dict key) or `digits_cnn` (sample-models/digits_cnn.onnx,
mirrored below). Needs torch, numpy, onnx (and torchvision for its networks); qlab's CI does
not run it. Exit status 1 unless every logit is identical (--tolerance relaxes that to a max
|diff|). With --calib, also prints PyTorch's own calibration (the same flow with the engine's
default observers run on CALIB instead of apply) against qlab, for contrast: it differs where
qlab calibrated with something PyTorch's default qconfig does not (percentile, entropy, MSE).
"""
import argparse
import importlib.util
import json
import copy
import pathlib
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.ao.quantization as tq
import torch.nn as nn
from onnx import numpy_helper


class DigitsCNN(nn.Module):
    """sample-models/digits_cnn.onnx as a PyTorch module: three Conv+BN+ReLU, a residual add
    (a FloatFunctional at the root, where the ONNX graph has it), global average pool, Linear."""

    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)
        self.conv3, self.bn3, self.relu3 = nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()
        self.add = nn.quantized.FloatFunctional()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, 10)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        p = self.pool(self.relu2(self.bn2(self.conv2(x))))
        x = self.add.add(p, self.relu3(self.bn3(self.conv3(p))))
        return self.dequant(self.fc(self.flatten(self.gap(x))))

    def fuse_model(self):
        groups = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["conv3", "bn3", "relu3"]]
        tq.fuse_modules(self, groups, inplace=True)


def build(name):
    if name == "digits_cnn":
        return DigitsCNN()
    from torchvision.models import quantization as qm
    return getattr(qm, name)(weights=None, quantize=False)


def onnx_weights(path):
    """The ONNX file's initializers by name, including the names the exporter aliased to a
    shared initializer through Identity nodes (it de-duplicates equal tensors)."""
    graph = onnx.load(path).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def load_weights(model, path):
    values = onnx_weights(path)
    state = model.state_dict()
    missing = [k for k in state if k not in values and not k.endswith("num_batches_tracked")]
    if missing:
        sys.exit(f"{path} lacks {len(missing)} state_dict key(s), e.g. {missing[:3]}")
    for key, tensor in state.items():
        if key in values:
            v = torch.from_numpy(np.array(values[key]))
            if v.shape != tensor.shape:
                sys.exit(f"{key}: {tuple(v.shape)} in {path}, {tuple(tensor.shape)} in the model")
            tensor.copy_(v)


def load_script(path):
    spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqnr(ref, x):
    noise = np.linalg.norm(ref - x)
    return float("inf") if noise == 0 else float(20 * np.log10(np.linalg.norm(ref) / noise))


def run(model, x, batch):
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()


def compare(title, ours, qlab):
    """Prints ours against qlab's logits; returns (identical count, max |diff|)."""
    diff = np.abs(ours - qlab)
    identical = int(np.sum(ours.view(np.uint32) == qlab.view(np.uint32)))
    print(title)
    print(f"  max |diff|        {diff.max():.9g}")
    print(f"  identical logits  {identical} / {ours.size}")
    print(f"  top-1 agreement   {np.mean(ours.argmax(1) == qlab.argmax(1)):.4f}")
    print(f"  SQNR              {sqnr(qlab, ours):.2f} dB")
    return identical, float(diff.max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apply", required=True, help="the script export pytorch wrote (its JSON beside it)")
    ap.add_argument("--model", required=True, help="a torchvision quantizable network's name, or digits_cnn")
    ap.add_argument("--onnx", required=True, help="the ONNX file qlab loaded (BN kept)")
    ap.add_argument("--inputs", required=True, help=".npy inputs qlab predicted on")
    ap.add_argument("--qlab", required=True, help="qlab's logits: predict DATA out=F.npy model=quantized")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--calib", help="optional: also calibrate in PyTorch on this .npy, for contrast")
    ap.add_argument("--calib-batch", type=int, default=4)
    ap.add_argument("--tolerance", type=float, default=0.0, help="max |diff| accepted (default: identical)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore")  # torch.ao.quantization's deprecation notices

    script = load_script(a.apply)
    engine = json.loads(script.QPARAMS.read_text())["engine"]
    torch.backends.quantized.engine = engine
    model = build(a.model)
    load_weights(model, a.onnx)
    # The user's flow, with apply where calibration would be.
    model.eval()
    model.fuse_model()
    model.qconfig = tq.get_default_qconfig(engine)
    prepared = tq.prepare(copy.deepcopy(model))
    script.apply(prepared)
    quantized = tq.convert(prepared)

    x = torch.from_numpy(np.load(a.inputs)).float()
    qlab = np.load(a.qlab).astype(np.float32)
    ours = run(quantized, x, a.batch)
    if ours.shape != qlab.shape:
        sys.exit(f"shapes differ: PyTorch {ours.shape}, qlab {qlab.shape}")
    identical, worst = compare(f"{a.model} on {engine}, {len(x)} inputs: PyTorch after apply vs qlab", ours, qlab)
    ok = identical == ours.size or (a.tolerance > 0 and worst <= a.tolerance)
    print("  result            " + ("identical" if identical == ours.size else "within tolerance" if ok else "DIFFERENT"))
    if a.calib:
        own = tq.prepare(model)
        calib = torch.from_numpy(np.load(a.calib)).float()
        run(own, calib, a.calib_batch)
        compare(f"for contrast: PyTorch's own calibration on {a.calib} (batch {a.calib_batch}) vs qlab",
                run(tq.convert(own), x, a.batch), qlab)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Writes tests/fixtures/parity/: a small network built from the pieces torchvision's quantizable
models use, exported with BatchNorm kept, and PyTorch's own eager static quantization of it
(fuse, default qconfig per engine, prepare, calibrate in batches of 4, convert) as reference.

Pieces: Conv+BN+ReLU and Conv+BN (fused), a residual `FloatFunctional.add_relu` (ResNet), a
squeeze-excitation with Hardsigmoid and `FloatFunctional.mul` (MobileNetV3), `nn.Hardswish`, a
stride-2 depthwise conv, a strided 1x1 conv, channel shuffle and `FloatFunctional.cat`
(ShuffleNet), `mean([2, 3])`, and a 1x1-conv classifier (a Linear would run MKL's SGEMM, whose
summation order depends on the host).

Usage: python tools/parity-gen/gen.py tests/fixtures/parity   (PyTorch 2.x with torchvision)
"""
import json, os, sys
import numpy as np
import torch
import torch.nn as nn
import torch.ao.quantization as tq

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(2)


def cbr(i, o, k=3, s=1, g=1, relu=True):
    layers = [nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = cbr(c, c)
        self.conv2 = cbr(c, c, relu=False)
        self.add_relu = nn.quantized.FloatFunctional()

    def forward(self, x):
        return self.add_relu.add_relu(self.conv2(self.conv1(x)), x)


class SE(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(c // r, c, 1)
        self.gate = nn.Hardsigmoid()
        self.mul = nn.quantized.FloatFunctional()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return self.mul.mul(self.gate(self.fc2(self.relu(self.fc1(s)))), x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.stem = cbr(3, 32, s=2)
        self.block = Block(32)
        self.se = SE(32)
        self.expand = cbr(32, 48, k=1, relu=False)
        self.act = nn.Hardswish()
        self.dw = cbr(48, 48, s=2, g=48, relu=False)
        self.down = nn.Sequential(nn.Conv2d(32, 48, 1, 2, bias=False), nn.BatchNorm2d(48))
        self.cat = nn.quantized.FloatFunctional()
        self.head = nn.Conv2d(96, 10, 1)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.block(self.stem(self.quant(x)))
        x = self.se(x)
        y = self.dw(self.act(self.expand(x)))
        z = self.cat.cat([y, self.down(x)], 1)
        b, c, h, w = z.shape
        z = z.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)
        z = self.head(z.mean([2, 3], keepdim=True))
        return self.dequant(torch.flatten(z, 1))

    def fuse_model(self):
        groups = [m for m in self.modules()
                  if type(m) is nn.Sequential and isinstance(m[0], nn.Conv2d)]
        for m in groups:
            tq.fuse_modules(m, ["0", "1", "2"] if len(m) == 3 else ["0", "1"], inplace=True)


torch.manual_seed(0)
g = torch.Generator().manual_seed(7)
m = Net()
m.train()
with torch.no_grad():
    for _ in range(4):
        m(torch.randn(8, 3, 32, 32, generator=g) * 0.5)
m.eval()
calib = torch.randn(8, 3, 32, 32, generator=g) * 0.5
test = torch.randn(2, 3, 32, 32, generator=g) * 0.5
np.save(f"{out}/calib.npy", calib.numpy())
np.save(f"{out}/test.npy", test.numpy())
torch.onnx.export(m, (test[:1],), f"{out}/net.onnx", dynamo=False, input_names=["input"],
                  output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                  training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, opset_version=17)
with torch.no_grad():
    ref = m(test)
np.save(f"{out}/float.npy", ref.numpy())
meta = {"torch": torch.__version__}
for engine in ["fbgemm", "qnnpack"]:
    torch.backends.quantized.engine = engine
    f = Net()
    f.load_state_dict(m.state_dict())
    f.eval()
    f.fuse_model()
    f.qconfig = tq.get_default_qconfig(engine)
    p = tq.prepare(f)
    with torch.no_grad():
        for i in range(0, 8, 4):
            p(calib[i:i + 4])
    q = tq.convert(p)
    with torch.no_grad():
        y = q(test)
    np.save(f"{out}/{engine}.npy", y.numpy())
    qp = {}
    for name, mod in q.named_modules():
        if hasattr(mod, "scale") and hasattr(mod, "zero_point"):
            qp[name] = {"type": type(mod).__name__, "scale": float(mod.scale),
                        "zero_point": int(mod.zero_point)}
    json.dump(qp, open(f"{out}/{engine}_qparams.json", "w"), indent=0)
    meta[f"{engine}_output_sqnr_db"] = float(20 * torch.log10(ref.norm() / (ref - y).norm()))
json.dump(meta, open(f"{out}/manifest.json", "w"), indent=1)
print(meta)

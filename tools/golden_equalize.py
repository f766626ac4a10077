"""Records golden cases for qlab's cross-layer equalization from PyTorch's eager
`torch.ao.quantization._equalize.equalize`.

Each case is a chain of Conv/Linear modules with ReLUs between them, seeded weights whose
output channels are deliberately uneven, the groups passed to `equalize`, and the weights and
biases PyTorch leaves, plus how many sweeps it made. Floats are written as the exact decimal of
each float32, so qlab can compare bit for bit.

Usage: python3 tools/golden_equalize.py tests/fixtures/equalize/equalize.json
"""

import json
import sys

import torch
from torch import nn
from torch.ao.quantization import _equalize


def uneven(module, gen):
    """Scales each output channel by a factor between 1/30 and 30 (what CLE is for)."""
    with torch.no_grad():
        w = module.weight
        factors = torch.exp(torch.empty(w.shape[0]).uniform_(-3.4, 3.4, generator=gen))
        w.mul_(factors.reshape([-1] + [1] * (w.ndim - 1)))
        if module.bias is not None:
            module.bias.mul_(factors)


def describe(module):
    if isinstance(module, nn.Linear):
        kind, groups = "linear", 1
    else:
        kind, groups = f"conv{module.weight.ndim - 2}d", module.groups
    return {
        "kind": kind,
        "groups": groups,
        "shape": list(module.weight.shape),
        "weight": [float(v) for v in module.weight.detach().flatten().tolist()],
        "bias": None
        if module.bias is None
        else [float(v) for v in module.bias.detach().tolist()],
    }


def case(name, modules, groups, seed, threshold=1e-4):
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential()
    for i, m in enumerate(modules):
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.empty(p.shape).uniform_(-1, 1, generator=gen))
        uneven(m, gen)
        model.add_module(f"m{i}", m)
        if i + 1 < len(modules):
            model.add_module(f"relu{i}", nn.ReLU())
    before = {n: describe(m) for n, m in model.named_children() if not isinstance(m, nn.ReLU)}
    calls = [0]
    original = _equalize.cross_layer_equalization

    def counted(a, b, *args, **kwargs):
        calls[0] += 1
        return original(a, b, *args, **kwargs)

    _equalize.cross_layer_equalization = counted
    try:
        _equalize.equalize(model, [list(g) for g in groups], threshold=threshold, inplace=True)
    finally:
        _equalize.cross_layer_equalization = original
    pairs = sum(len(g) - 1 for g in groups)
    after = {n: describe(m) for n, m in model.named_children() if not isinstance(m, nn.ReLU)}
    return {
        "name": name,
        "modules": before,
        "groups": groups,
        "threshold": threshold,
        "expected": {"sweeps": calls[0] // pairs, "modules": after},
    }


def main(out):
    cases = [
        case("conv_relu_conv", [nn.Conv2d(3, 8, 3), nn.Conv2d(8, 6, 3)], [["m0", "m1"]], 1),
        case(
            "depthwise_then_pointwise",
            [nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 16, 1)],
            [["m0", "m1"]],
            2,
        ),
        case(
            "linear_chain_of_three",
            [nn.Linear(10, 12), nn.Linear(12, 9), nn.Linear(9, 5)],
            [["m0", "m1", "m2"]],
            3,
        ),
        case(
            "no_bias_conv1d",
            [nn.Conv1d(4, 6, 3, bias=False), nn.Conv1d(6, 3, 1, bias=False)],
            [["m0", "m1"]],
            4,
        ),
        case(
            "loose_threshold",
            [nn.Linear(6, 7), nn.Linear(7, 3)],
            [["m0", "m1"]],
            5,
            threshold=0.5,
        ),
    ]
    doc = {
        "source": f"torch {torch.__version__}: torch.ao.quantization._equalize.equalize",
        "cases": cases,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])

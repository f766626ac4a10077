"""qlab's quantization parameters for PyTorch eager mode, written by qlab's `export pytorch`
for {{MODEL}} on {{ENGINE}}. The parameters are in {{JSON}} beside this file; it needs
only `torch`.

    import torch, torch.ao.quantization as tq
    from {{MODULE}} import apply
    model.eval()
    model.fuse_model()                      # or fuse_modules: the fusion qlab used
    torch.backends.quantized.engine = "{{ENGINE}}"
    model.qconfig = tq.get_default_qconfig("{{ENGINE}}")
    prepared = tq.prepare(model)
    apply(prepared)                         # instead of calibrating
    quantized = tq.convert(prepared)        # qlab's int8 model

`apply` gives every module the JSON lists an activation observer that returns qlab's scale and
zero point, and (for modules with weights) a qconfig whose weight observer returns qlab's
weight scales and zero points, so `convert` builds qlab's model whatever qlab calibrated with.
"""

import functools
import json
import pathlib

import torch
from torch.ao.quantization import QConfig
from torch.ao.quantization.observer import ObserverBase
from torch.ao.nn.quantized import FloatFunctional

QPARAMS = pathlib.Path(__file__).with_name("{{JSON}}")
SCHEMA_VERSION = {{SCHEMA_VERSION}}
# Integer ranges by dtype, for entries that do not record the observer's range.
RANGES = {"quint8": (0, 255), "qint8": (-128, 127), "qint32": (-(2**31), 2**31 - 1)}


class FixedQParamsObserver(ObserverBase):
    """An observer that has already decided: `forward` returns its input unchanged and
    `calculate_qparams` qlab's scales (float64, as PyTorch's modules store them) and zero
    points; `dtype`, `qscheme`, `ch_axis`, `quant_min` and `quant_max` are what convert reads."""

    def __init__(self, scale, zero_point, dtype="quint8", qscheme="per_tensor_affine",
                 ch_axis=None, quant_min=None, quant_max=None):
        super().__init__(dtype=getattr(torch, dtype))
        self.qscheme = getattr(torch, qscheme)
        self.ch_axis = 0 if ch_axis is None else ch_axis
        lo, hi = RANGES[dtype]
        self.quant_min = lo if quant_min is None else quant_min
        self.quant_max = hi if quant_max is None else quant_max
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64).reshape(-1))
        self.register_buffer("zero_point", torch.tensor(zero_point, dtype=torch.int64).reshape(-1))

    def forward(self, x):
        return x

    @torch.jit.export
    def calculate_qparams(self):
        return self.scale, self.zero_point

    def extra_repr(self):
        return f"dtype={self.dtype}, qscheme={self.qscheme}, scale={self.scale.tolist()[:4]}"


def _observer(q):
    """A factory (what a QConfig holds) of the fixed observer for one JSON qparams entry."""
    keys = ("scale", "zero_point", "dtype", "qscheme", "ch_axis", "quant_min", "quant_max")
    return functools.partial(FixedQParamsObserver, **{k: q.get(k) for k in keys if k in q})


def _owners(model):
    """Paths of the modules prepare gave an activation observer, in named_modules order."""
    return [name for name, m in model.named_modules()
            if isinstance(getattr(m, "activation_post_process", None), torch.nn.Module)]


def _functional(modules, entry, taken):
    """The FloatFunctional standing for one of qlab's add / mul / cat nodes: ONNX keeps only the
    scope the method was called in, so the first FloatFunctional directly under it not yet
    taken (named_modules order)."""
    scope = entry["scope"]
    for name, m in modules.items():
        parent = name.rpartition(".")[0]
        if isinstance(m, FloatFunctional) and parent == scope and name not in taken:
            return name
    return None


def apply(prepared_model, json_path=None, verbose=True):
    """Sets qlab's activation and weight qparams on `prepared_model` (the result of
    `torch.ao.quantization.prepare`). Raises KeyError naming every module of the JSON the model
    lacks or did not observe, changing nothing; returns {"applied": {json node: module path},
    "uncovered": [module paths with an observer the JSON does not set]}."""
    spec = json.loads(pathlib.Path(json_path or QPARAMS).read_text())
    if spec.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{json_path or QPARAMS}: schema_version {spec.get('schema_version')}, "
                         f"this script reads {SCHEMA_VERSION}")
    engine = torch.backends.quantized.engine
    if engine != spec["engine"]:
        print(f"apply: qlab converted for {spec['engine']}, torch.backends.quantized.engine is "
              f"{engine}: the integers will follow {engine}'s kernels")
    modules = dict(prepared_model.named_modules())
    # Every entry is placed before anything changes: a model that does not fit is left as it was.
    placed, problems = [], []
    for entry in spec["modules"]:
        path = entry["module"]
        if path is None:
            path = _functional(modules, entry, {p for _, p in placed})
            if path is None:
                problems.append(f"{entry['node']} (qlab's {entry['functional']}): no "
                                f"FloatFunctional under '{entry['scope']}'")
                continue
        module = modules.get(path)
        if module is None:
            problems.append(f"{path}: no such module")
        elif not isinstance(getattr(module, "activation_post_process", None), torch.nn.Module):
            problems.append(f"{path}: has no activation observer (no qconfig at prepare?)")
        else:
            placed.append((entry, path))
    if problems:
        raise KeyError("qlab's qparams do not fit this model: " + "; ".join(problems))
    applied = {}
    for entry, path in placed:
        module = modules[path]
        act = _observer(entry["activation"])
        module.activation_post_process = act()
        if entry.get("weight") is not None:
            # convert asks `qconfig.weight()` of the module, or of its first child for fused
            # modules (ConvReLU2d → Conv2d), so every submodule gets the qconfig.
            qconfig = QConfig(activation=act, weight=_observer(entry["weight"]))
            for m in module.modules():
                if not isinstance(m, ObserverBase):
                    m.qconfig = qconfig
        applied[entry["node"]] = path
    covered = set(applied.values())
    uncovered = [p for p in _owners(prepared_model) if p not in covered]
    if verbose:
        print(f"apply: qlab's qparams set on {len(applied)} module(s)"
              + (f"; observers left as PyTorch's: {', '.join(uncovered)}" if uncovered else ""))
    return {"applied": applied, "uncovered": uncovered}

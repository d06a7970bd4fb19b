"""ONNX export of a zoo model: its inference form (BN folded, dynamic convs static), checked with onnxruntime.

The TorchScript-based exporter is used (``dynamo=False``): the ``torch.export``-based one needs onnxscript,
which nasbench does not depend on. The batch axis is dynamic; the spatial size is the architecture's.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasbench.build import Net
from nasbench.errors import NasbenchError
from nasbench.zoo.fold import inference_model
from nasbench.zoo.zoo import ONNX_FILE

ONNX_OPSET = 17
ONNX_TOLERANCE = 1e-4  # max abs diff, relative to max(1, max |logit|): float32 reassociation, not bugs


def onnx_bytes(model: torch.nn.Module, resolution: int, opset: int = ONNX_OPSET) -> bytes:
    """``model`` as ONNX with a dynamic batch axis; a failure names the block that did not export."""
    model = model.eval()
    x = torch.randn(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (x,),
                buffer,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,  # the torch.export-based exporter needs onnxscript, not a dependency here
            )
    except Exception as e:  # the exporter raises many types; all mean "this model does not export"
        raise NasbenchError(f"ONNX export failed in {_block_of(model, str(e))}: {_first_line(e)}") from None
    return buffer.getvalue()


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _block_of(model: torch.nn.Module, message: str) -> str:
    """Which block of a ``Net`` an exporter error message points at (its module scope names it)."""
    arch = getattr(model, "arch", None)
    m = re.search(r"stages\.(\d+)\.(\d+)", message)
    if m and arch is not None:
        i, j = int(m.group(1)), int(m.group(2))
        return f"stage {i + 1} layer {j + 1} ({arch.stages[i].layers[j].block} block)"
    for part in ("stem", "head", "classifier"):
        if f"::{part}" in message or f"{part}." in message:
            return f"the {part}"
    return "the model"


def export_onnx(model: Net, path: Path, opset: int = ONNX_OPSET) -> dict[str, Any]:
    """Write the inference form of ``model`` to ``path`` and check it with onnxruntime against ``model``."""
    import onnxruntime as ort

    resolution = model.arch.resolution
    data = onnx_bytes(inference_model(model), resolution, opset)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, resolution, resolution, generator=torch.Generator().manual_seed(1))  # not the traced batch
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    limit = ONNX_TOLERANCE * max(1.0, float(np.abs(expected).max()))
    if not diff <= limit:
        raise NasbenchError(
            f"the ONNX model disagrees with PyTorch: max abs diff {diff:.3g} is over the tolerance {limit:.3g}"
        )
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"file": ONNX_FILE, "opset": opset, "max_abs_diff": diff, "tolerance": limit, "batch_checked": 3}

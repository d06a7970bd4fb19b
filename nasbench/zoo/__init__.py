"""The model zoo: export a searched architecture with its weights, card and ONNX; load it back safely.

Public API::

    export_arch(run, arch_id, name, *, zoo="zoo", onnx=False, force=False) -> ZooEntry
    create_model(name, pretrained=True, zoo="zoo", *, fold_bn=False) -> nasbench.build.Net
    read_entry(name, zoo) -> ZooEntry            list_entries(zoo) -> [(name, entry | None, error | None)]
    fold_bn(model) / inference_model(model)      batch norm folded (the deployed form)

Modules: ``zoo`` (the folder layout, safe loading, the card), ``export`` (run -> entry), ``fold``
(inference transforms), ``onnx_export`` (ONNX, checked with onnxruntime). The commands (``nasbench export``,
``nasbench zoo list|show``) are in ``nasbench.cli.zoo``.
"""

from nasbench.zoo.export import export_arch
from nasbench.zoo.fold import fold_bn, inference_model
from nasbench.zoo.onnx_export import export_onnx
from nasbench.zoo.zoo import DEFAULT_ZOO, ZooEntry, create_model, list_entries, read_entry

__all__ = [
    "DEFAULT_ZOO",
    "ZooEntry",
    "create_model",
    "export_arch",
    "export_onnx",
    "fold_bn",
    "inference_model",
    "list_entries",
    "read_entry",
]

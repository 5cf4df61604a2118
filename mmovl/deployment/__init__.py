# Copyright (c) mmovl contributors. All rights reserved.
"""Deployment of mmovl's open-vocabulary classifiers: ONNX graphs that take
the vocabulary (label embeddings) as an input. ``onnx`` (and
``onnxruntime`` to run them) are needed only when a function here is
called."""
from .onnx import (DEFAULT_OPSET, OpenVocabClsExportWrapper,
                   OpenVocabTextExportWrapper, build_classifier,
                   export_cls_onnx, export_text_onnx,
                   label_embeds_from_names, model_image_size,
                   model_label_embeds, read_onnx_metadata)

__all__ = [
    'OpenVocabClsExportWrapper', 'OpenVocabTextExportWrapper',
    'export_cls_onnx', 'export_text_onnx', 'label_embeds_from_names',
    'model_label_embeds', 'build_classifier', 'read_onnx_metadata',
    'model_image_size', 'DEFAULT_OPSET'
]

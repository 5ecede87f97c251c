"""Writing a graph of :mod:`.graph_families` to one ONNX file, and reading its description back.

The graph is traced by torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``), which
translates NMS and RoIAlign to the standard ``NonMaxSuppression`` and ``RoiAlign``, and our
``mmconvnext::grouped_nms`` by :data:`ONNX_TRANSLATIONS`: the file needs no custom-op library.
It is checked by the ONNX checker and written atomically (a temporary file renamed), so a failed
export leaves no file. Its ``metadata_props`` describe it
(:data:`METADATA_PREFIX` keys, read by :func:`file_description`).
"""
import contextlib
import io
import logging
import os
import os.path as osp

import onnx
import torch
from onnxscript import opset18 as onnx_op

from mmconvnext.models.backbones.convnext_ops import own_paths
from .errors import DeployError
from .graph_ops import grouped_nms  # noqa: F401  (registers torch.ops.mmconvnext)

#: The graphs' input: (N, 3, H, W) float32 RGB values in 0-255.
INPUT_NAME = 'image'
#: H and W of the input must be multiples of this (the backbones' largest stride).
SIZE_DIVISOR = 32
#: Prefix of the file's metadata keys.
METADATA_PREFIX = 'mmconvnext.'


def _grouped_nms_onnx(boxes, scores, iou_threshold: float, score_threshold: float,
                      max_per_group: int):
    """:func:`.graph_ops.grouped_nms` as one ``NonMaxSuppression``: the groups as its batch,
    one class; its (batch, class, index) rows without the class."""
    selected = onnx_op.NonMaxSuppression(
        boxes, onnx_op.Unsqueeze(scores, [1]), onnx_op.Constant(value_ints=[max_per_group]),
        onnx_op.Constant(value_floats=[iou_threshold]),
        onnx_op.Constant(value_floats=[score_threshold]))
    return onnx_op.Gather(selected, onnx_op.Constant(value_ints=[0, 2]), axis=1)


#: Our ops' ONNX forms, for the exporter's ``custom_translation_table``.
ONNX_TRANSLATIONS = {torch.ops.mmconvnext.grouped_nms.default: _grouped_nms_onnx}


def check_input_shape(height, width):
    """``DeployError`` unless ``height`` and ``width`` are positive multiples of
    :data:`SIZE_DIVISOR`."""
    if height <= 0 or width <= 0 or height % SIZE_DIVISOR or width % SIZE_DIVISOR:
        raise DeployError(f'input shape {height} x {width}: H and W must be positive multiples '
                          f'of {SIZE_DIVISOR} (the backbone stride); pad the image')


def _dynamic_shapes(batch_dynamic):
    """torch.export's description of a dynamic input: H and W any multiples of 32, and with
    ``batch_dynamic`` any batch size."""
    height = torch.export.Dim('height_blocks', min=1, max=1024)
    width = torch.export.Dim('width_blocks', min=1, max=1024)
    axes = {2: SIZE_DIVISOR * height, 3: SIZE_DIVISOR * width}
    if batch_dynamic:
        axes[0] = torch.export.Dim('batch', min=1, max=1024)
    return {INPUT_NAME: axes}


@contextlib.contextmanager
def _quiet_exporter():
    """Without the exporter's progress lines (stdout) and torch's logged tracebacks of the
    attempts it retries; a failure still raises with its message."""
    logger = logging.getLogger('torch')
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def write_onnx(graph, image, path, dynamic=False, metadata=None):
    """Export ``graph`` traced on ``image`` (N, 3, H, W) to the ONNX file ``path``.

    Args:
        graph (nn.Module): a graph of :func:`.graph_families.exportable_graph` with its
            ``output_names``, ``batch_dynamic`` and ``optimize_onnx``.
        image (Tensor): the example input; its shape is the file's fixed input shape unless
            ``dynamic``.
        dynamic (bool): H and W any multiples of 32 (and, for segmentors, whose graphs handle
            a batch, any N).
        metadata (dict): str -> str, stored as ``mmconvnext.<key>`` metadata.

    Raises ``DeployError`` with the exporter's message when tracing or checking fails; nothing is
    written then.
    """
    check_input_shape(*image.shape[-2:])
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        raise DeployError(f'{path}: folder {folder} does not exist')
    partial = f'{path}.partial'
    if dynamic and graph.batch_dynamic:  # torch.export specialises axes traced at size 1
        image = image.expand(2, -1, -1, -1)
    try:
        with torch.no_grad(), own_paths(image.device.type, ops=()), _quiet_exporter():
            program = torch.onnx.export(
                graph, (image, ), dynamo=True, input_names=[INPUT_NAME],
                output_names=graph.output_names, external_data=False, verbose=False,
                optimize=graph.optimize_onnx, custom_translation_table=ONNX_TRANSLATIONS,
                dynamic_shapes=_dynamic_shapes(graph.batch_dynamic) if dynamic else None)
        model = program.model_proto  # written once, with its metadata
        for key, value in (metadata or {}).items():
            model.metadata_props.add(key=METADATA_PREFIX + key, value=str(value))
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, partial)
        os.replace(partial, path)
    except DeployError:
        raise
    except Exception as error:  # noqa: B902 (the exporter raises many kinds)
        message = str(error).strip().splitlines()
        raise DeployError(f'torch.onnx could not export {type(graph).__name__}: '
                          f'{type(error).__name__}: {message[0] if message else ""}') from error
    finally:
        if osp.exists(partial):
            os.remove(partial)


def file_description(path):
    """The ``mmconvnext.`` metadata of the ONNX file ``path`` (keys without the prefix), and
    its input's shape as ``input_shape`` (a list of ints, None for a dynamic axis)."""
    if not osp.isfile(path):
        raise DeployError(f'model file {path} does not exist')
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # noqa: B902 (protobuf's DecodeError and others)
        raise DeployError(f'{path} is not an ONNX file: {error}') from error
    description = {entry.key[len(METADATA_PREFIX):]: entry.value
                   for entry in model.metadata_props if entry.key.startswith(METADATA_PREFIX)}
    if 'task' not in description:
        raise DeployError(f'{path} was not written by tools/export.py (no {METADATA_PREFIX}task '
                          'metadata)')
    dims = model.graph.input[0].type.tensor_type.shape.dim
    description['input_shape'] = [dim.dim_value if dim.HasField('dim_value') else None
                                  for dim in dims]
    description['outputs'] = [output.name for output in model.graph.output]
    return description

"""Probing the base backbone's output pyramid and placing ConvNeXt stages at its strides."""
import copy

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope

from mmconvnext.models.backbones.convnext import OUTPUT_STRIDES, STAGE_STRIDES, stage_geometry
from .errors import BackboneSwapError, describe_error

#: side (pixels) of the square probe image the base backbone and the swapped model run on
PROBE_SIZE = 256


def run_on_probe(backbone, name):
    """``backbone`` (a built module) on a zero PROBE_SIZE x PROBE_SIZE image -> [(channels,
    stride)] of its outputs, in order; the stride is None where the output size does not divide
    PROBE_SIZE."""
    backbone.eval()  # not chained: some backbones' train() returns None
    with torch.no_grad():
        outs = backbone(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    if not outs or not all(isinstance(out, torch.Tensor) and out.ndim == 4 for out in outs):
        raise BackboneSwapError(f'the backbone {name} does not return a sequence of '
                                '(N, C, H, W) feature maps')
    pyramid = []
    for out in outs:
        height, width = out.shape[-2:]
        divides = height == width and PROBE_SIZE % height == 0
        pyramid.append((out.shape[1], PROBE_SIZE // height if divides else None))
    return pyramid


def probe_backbone(backbone_cfg, scope):
    """Build the backbone of ``backbone_cfg`` (without pretrained weights) and probe it
    (:func:`run_on_probe`)."""
    init_default_scope(scope)
    name = backbone_cfg.get('type')
    try:
        backbone = revert_sync_batchnorm(MODELS.build(copy.deepcopy(backbone_cfg)))
        return run_on_probe(backbone, name)
    except BackboneSwapError:
        raise
    except Exception as err:  # any failure: the base backbone's outputs stay unknown
        raise BackboneSwapError(
            f'the base backbone {name} does not build or run on a {PROBE_SIZE}x{PROBE_SIZE} probe '
            f'image ({describe_error(err)}): its output pyramid is unknown') from err


def convnext_placement(pyramid, backbone_cfg):
    """(out_indices, output_stride) of the ConvNeXt whose outputs have the strides of the base
    backbone's outputs ``pyramid``: the least dilation that fits, output_stride 32 first.

    Stages are the base's ``out_indices`` where they are 0-3 and fit (ResNet-like backbones,
    dilated or not), else read from the strides: each new stride is the stage of that stride, a
    repeated one the next stage (a dilated backbone's later stages).
    """
    strides = [stride for _, stride in pyramid]
    candidates = [_stages_from_strides(strides)]
    base_indices = backbone_cfg.get('out_indices')
    if (isinstance(base_indices, (list, tuple)) and len(base_indices) == len(strides)
            and all(index in range(4) for index in base_indices)):
        candidates.insert(0, tuple(base_indices))
    for out_indices in filter(None, candidates):
        for output_stride in sorted(OUTPUT_STRIDES, reverse=True):
            convnext_strides = stage_geometry(output_stride)[0]
            if [convnext_strides[i] for i in out_indices] == strides:
                return out_indices, output_stride
    if None in strides or not set(strides) <= set(STAGE_STRIDES):
        why = ('ConvNeXt has outputs at strides 4, 8, 16, 32 only; a base backbone with other '
               'strides (extra layers, a stride-2 stem output) cannot be replaced')
    elif strides != sorted(strides):
        why = 'ConvNeXt cannot output a pyramid whose strides fall'
    else:
        why = ('several outputs share a stride, more than ConvNeXt\'s dilated stages can '
               'provide (at output_stride 8: stages 1-3 at stride 8; at 16: stages 2-3 at '
               'stride 16), as in a single-scale pyramid such as ViT\'s; take a base config with '
               'a multi-scale feature pyramid')
    raise BackboneSwapError(
        f'the base backbone {backbone_cfg.get("type")} outputs strides {strides} (channels '
        f'{[channels for channels, _ in pyramid]}) on a {PROBE_SIZE}x{PROBE_SIZE} image; {why}')


def _stages_from_strides(strides):
    """ConvNeXt stages read from increasing or repeated ``strides``; None where they do not
    read as stages 0-3."""
    stages = []
    for previous, stride in zip([None] + strides, strides):
        if stride is not None and stride == previous:
            stages.append(stages[-1] + 1)
        elif stride in STAGE_STRIDES and (previous is None or stride > previous):
            stages.append(STAGE_STRIDES.index(stride))
        else:
            return None
    return tuple(stages) if stages[-1] <= 3 else None

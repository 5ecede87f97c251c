"""Swap the backbone of any mmdet / mmseg config for ConvNeXt, keeping everything else.

:func:`plan_backbone_swap` reads the *loaded* base config (:mod:`.base_config`), runs the base
backbone on a probe image to learn the (channels, stride) of each output and places ConvNeXt
stages at those strides, dilated (``output_stride`` 16 / 8) for a dilated base (:mod:`.probe`);
sets the input normalisation of the ConvNeXt weights (:mod:`.normalisation`); rewrites the input
channels of the modules that read the backbone (:mod:`.rewire`); and replaces the optimizer with
the paper's AdamW + layer-wise (mmdet) / stage-wise (mmseg) lr decay (:mod:`.recipe`). Its text
is a short child config that inherits the base and overrides only those keys (:mod:`.render`);
:func:`write_swapped_config` checks that the written file loads, builds, runs at the base's
strides and builds its optimizer before putting it in place, then counts #params / FLOPs of both
models (:mod:`.check`).

Bases that cannot take a ConvNeXt pyramid faithfully are refused with
:class:`BackboneSwapError`: outputs at strides ConvNeXt has not (ViT's single-scale pyramid,
extra stride-64 layers), a normalisation inside the data pipeline, modules that keep other keys
tied to the old channels (a C4 RoI head running the backbone's last stage).
"""
from .errors import BackboneSwapError
from .plan import plan_backbone_swap
from .write import write_swapped_config

__all__ = ['BackboneSwapError', 'plan_backbone_swap', 'write_swapped_config']

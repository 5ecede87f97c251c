"""timm's ConvNeXt as a dense backbone, for the ``timm:CONFIG`` peer of
``tools/analysis/benchmark_train.py``: a config of ours with timm's model in place of ours.

:class:`TimmConvNeXt` runs timm's own stem, stages and blocks (timm's default NCHW layout, eager)
and returns the outputs of ``out_indices``, each through timm's ``LayerNorm2d``, as ours does.
It exposes ``depths``, ``downsample_layers`` (stem, then each stage's downsampling) and
``stages`` (each stage's blocks), the names our layer-decay constructor groups by, so the peer
trains with the same learning-rate groups.
"""
import torch.nn as nn
from mmengine.model import BaseModule

from mmconvnext.models.backbones.arch_settings import parse_arch
from mmconvnext.registry import MODELS


@MODELS.register_module()
class TimmConvNeXt(BaseModule):
    """timm ConvNeXt (timm's ``ConvNeXt`` class, random weights) as a dense backbone.

    Args:
        arch (str | dict): a named size or dict(depths, channels), as ours takes it.
        drop_path_rate (float): stochastic depth, linear over the blocks (as ours). Default 0.
        layer_scale_init_value (float): V1 layer scale init (timm ``ls_init_value``).
            Default 1e-6.
        use_grn (bool): ConvNeXt V2 blocks (GRN, no layer scale, as timm's ``convnextv2_*``).
            Default False.
        out_indices (Sequence[int]): stages whose outputs are returned, strides 4, 8, 16, 32.
    """

    def __init__(self, arch='tiny', drop_path_rate=0., layer_scale_init_value=1e-6,
                 use_grn=False, out_indices=(0, 1, 2, 3), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from timm.layers import LayerNorm2d
        from timm.models.convnext import ConvNeXt
        self.depths, self.channels = parse_arch(arch)
        timm_model = ConvNeXt(depths=self.depths, dims=self.channels, num_classes=0,
                              drop_path_rate=drop_path_rate, use_grn=use_grn,
                              ls_init_value=None if use_grn else layer_scale_init_value)
        self.out_indices = tuple(out_indices)
        self.downsample_layers = nn.ModuleList(
            [timm_model.stem] + [timm_model.stages[i].downsample for i in range(1, 4)])
        self.stages = nn.ModuleList(stage.blocks for stage in timm_model.stages)
        self.out_norms = nn.ModuleList(LayerNorm2d(self.channels[i]) for i in self.out_indices)

    def forward(self, x):
        """(N, 3, H, W) -> tuple of (N, C_i, H / 2**(i + 2), W / 2**(i + 2)) for i in
        ``out_indices``."""
        outs = []
        for i, (downsample, blocks) in enumerate(zip(self.downsample_layers, self.stages)):
            x = blocks(downsample(x))
            if i in self.out_indices:
                outs.append(self.out_norms[self.out_indices.index(i)](x))
        return tuple(outs)


def swap_in_timm_convnext(cfg):
    """Replace ``cfg.model.backbone`` (a ConvNeXt of ours or mmpretrain's) by
    :class:`TimmConvNeXt` of the same size, drop path, layer scale and outputs, in place."""
    backbone = cfg.model.backbone
    if str(backbone.get('type', '')).split('.')[-1] != 'ConvNeXt':
        raise ValueError(f'timm: needs a config whose backbone is a ConvNeXt; got '
                         f'type={backbone.get("type")!r}')
    cfg.model.backbone = dict(
        type='mmconvnext.TimmConvNeXt', arch=backbone.arch,
        drop_path_rate=backbone.get('drop_path_rate', 0.),
        layer_scale_init_value=backbone.get('layer_scale_init_value', 1e-6),
        use_grn=backbone.get('use_grn', False),
        out_indices=tuple(backbone.get('out_indices', (0, 1, 2, 3))))

"""The ConvNeXt backbones ``tools/analysis/benchmark_backbone.py`` compares, built to do the same
work, and their analytic forward FLOPs.

Every model returns the four stage outputs, each through a channels-first LayerNorm (timm's
features get timm's own ``LayerNorm2d``).
"""
import torch
import torch.nn as nn

#: Peer names: ours, timm (NCHW and channels_last memory), mmpretrain.
PEERS = ('mmconvnext', 'timm', 'timm-channels_last', 'mmpretrain')


class TimmDense(nn.Module):
    """timm ConvNeXt features (4 stages) + timm LayerNorm2d on each output."""

    def __init__(self, arch):
        super().__init__()
        import timm
        from timm.layers import LayerNorm2d
        self.features = timm.create_model(f'convnext_{arch}', pretrained=False, features_only=True)
        self.norms = nn.ModuleList(LayerNorm2d(c) for c in self.features.feature_info.channels())

    def forward(self, x):
        return tuple(norm(f) for norm, f in zip(self.norms, self.features(x)))


def build(peer, arch, with_cp=False):
    """The backbone ``peer`` of size ``arch`` in train mode, with its preferred memory layout."""
    if peer == 'mmconvnext':
        from mmconvnext.models import ConvNeXt
        return ConvNeXt(arch, with_cp=with_cp)
    if with_cp:
        raise ValueError(f'with_cp is only benchmarked for mmconvnext, not {peer!r}')
    if peer.startswith('timm'):
        model = TimmDense(arch)
        return model.to(memory_format=torch.channels_last) if 'channels_last' in peer else model
    if peer == 'mmpretrain':
        from mmpretrain.models import ConvNeXt
        return ConvNeXt(arch, out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    raise ValueError(f'unknown peer {peer!r}; valid: {", ".join(PEERS)}')


def convnext_forward_flops(arch, shape, in_channels=3):
    """Analytic forward FLOPs of the ConvNeXt backbone (output stride 32) on one (H, W) image,
    and the share of the 1x1 (GEMM) layers. 2 FLOPs per multiply-add; LayerNorm, GELU and
    residuals not counted."""
    from mmconvnext.models.backbones.arch_settings import parse_arch
    depths, channels = parse_arch(arch)
    pixels = (shape[0] // 4) * (shape[1] // 4)
    total = 2 * pixels * channels[0] * in_channels * 4 * 4  # stem 4x4 conv, stride 4
    gemm = 0
    for stage, (depth, dim) in enumerate(zip(depths, channels)):
        if stage:
            pixels = (shape[0] // 2**(stage + 2)) * (shape[1] // 2**(stage + 2))
            total += 2 * pixels * dim * channels[stage - 1] * 2 * 2  # 2x2 conv, stride 2
        gemm += depth * 2 * 2 * pixels * dim * 4 * dim  # pwconv1 + pwconv2
        total += depth * 2 * pixels * dim * 7 * 7  # depthwise 7x7
    total += gemm
    return total, gemm / total

"""ConvNeXt (Liu et al., "A ConvNet for the 2020s") and ConvNeXt V2 as a dense-prediction backbone.

Parameter names follow the official repository exactly, so its classification and fine-tuned
COCO / ADE20K checkpoints load unchanged; other published formats are converted by
:mod:`mmconvnext.models.backbones.checkpoint_formats`.

Tensors stay in ``channels_last`` memory from the stem on: the NCHW -> NHWC permutes around
each block's LayerNorm / MLP are then free views, and outputs are logically NCHW. The V1 block
MLP, the undilated depthwise conv and the patchify convs run ops with faster CPU training
(:mod:`.convnext_ops`); the MLP also stores about half the activations of the plain modules.

``output_stride`` 16 / 8 builds timm's dilated ConvNeXt: the same parameters, the later stages at
a fixed resolution (:func:`stage_geometry`, :class:`ResolutionKeepingConv`).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from mmconvnext.registry import MODELS, register_downstream
from .arch_settings import parse_arch
from .checkpoint_formats import convert_in_place, load_pretrained
from .convnext_ops import depthwise_conv, norm_mlp, patchify_conv

#: ``output_stride`` values: the stride of the deepest stage.
OUTPUT_STRIDES = (8, 16, 32)
#: stride of stage i in the undilated network (``output_stride=32``)
STAGE_STRIDES = (4, 8, 16, 32)


def stage_geometry(output_stride):
    """-> (strides, dilations) of stages 0-3 at ``output_stride`` (8, 16 or 32).

    A stage whose undilated stride passes ``output_stride`` keeps the resolution of the stage
    before it, and its depthwise convs dilate by undilated stride / stride: at 8, strides
    (4, 8, 8, 8) and dilations (1, 1, 2, 4); at 16, (4, 8, 16, 16) and (1, 1, 1, 2); at 32,
    (4, 8, 16, 32) and all 1.
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f'output_stride={output_stride!r} is invalid; valid: '
                         f'{", ".join(map(str, OUTPUT_STRIDES))}')
    strides = tuple(min(stride, output_stride) for stride in STAGE_STRIDES)
    return strides, tuple(natural // stride for natural, stride in zip(STAGE_STRIDES, strides))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor; ``weight``/``bias`` (C,), eps 1e-6."""

    def __init__(self, num_channels, eps=1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


class PatchifyConv(nn.Conv2d):
    """k x k conv with stride k, no padding (the stem and the downsampling layers)."""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__(in_channels, out_channels, kernel_size, stride=kernel_size)

    def forward(self, x):
        return patchify_conv(x, self.weight, self.bias)


class ResolutionKeepingConv(nn.Conv2d):
    """The 2x2 downsampling conv of a stage that does not stride (``output_stride`` 8 / 16).

    Stride 1, dilated as the stage before it (``dilation`` d); its input is zero-padded by
    ``d // 2`` on the left / top and ``d - d // 2`` on the right / bottom, so the (H, W) of any
    input is kept (timm's 'same' padding). Same weight (C', C, 2, 2) as the striding layer it
    replaces; runs the framework's conv.
    """

    def __init__(self, in_channels, out_channels, dilation):
        super().__init__(in_channels, out_channels, 2, dilation=dilation)
        self.pad = (dilation // 2, dilation - dilation // 2) * 2  # F.pad order: W, then H

    def forward(self, x):
        return F.conv2d(F.pad(x, self.pad), self.weight, self.bias, dilation=self.dilation)


class GRN(nn.Module):
    """ConvNeXt V2 Global Response Normalization of NHWC input; ``gamma``/``beta`` (C,)."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        """``gamma * (x * nx) + beta + x``, computed as ``x * (1 + gamma * nx) + beta``.

        The spatial L2 norm and its channel mean are taken in fp32 (at least): in fp16 the norm
        of an (H, W) map passes 65504 once its values reach ~65504 / sqrt(H * W), e.g. 1170 at
        56 x 56. The per-channel factor ``1 + gamma * nx`` (N, 1, 1, C) is then cast to x's
        dtype, so no (N, H, W, C) product larger than the output is formed.
        """
        gx = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True,
                                      dtype=torch.promote_types(x.dtype, torch.float32))
        nx = gx / (gx.mean(dim=-1, keepdim=True) + self.eps)  # (N, 1, 1, C)
        return torch.addcmul(self.beta, x, (1 + self.gamma * nx).to(x.dtype))


class Block(nn.Module):
    """dwconv 7x7 -> LayerNorm -> 1x1 (4x) -> GELU [-> GRN] -> 1x1 -> layer scale, + residual.

    Args:
        dim (int): channels C; input and output are (N, C, H, W).
        drop_path (float): stochastic-depth rate of this block.
        layer_scale_init_value (float): initial ``gamma``; 0 disables layer scale (V2).
        use_grn (bool): ConvNeXt V2 Global Response Normalization after GELU.
        dilation (int): of the depthwise conv (padding ``3 * dilation`` keeps H, W). Default 1.
    """

    def __init__(self, dim, drop_path=0., layer_scale_init_value=1e-6, use_grn=False,
                 dilation=1):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3 * dilation, dilation=dilation,
                                groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)  # 1x1 convs as Linear on NHWC
        self.act = nn.GELU()
        self.grn = GRN(4 * dim) if use_grn else None
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = (nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
                      if layer_scale_init_value > 0 else None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        y = depthwise_conv(x, self.dwconv.weight, self.dwconv.bias, self.dwconv.dilation[0])
        y = y.permute(0, 2, 3, 1)  # (N, H, W, C), a view in channels_last
        if self.grn is None:  # fused; backward recomputes the LayerNorm and GELU outputs
            y = norm_mlp(y, self.norm.weight, self.norm.bias, self.norm.eps, self.pwconv1.weight,
                         self.pwconv1.bias, self.pwconv2.weight, self.pwconv2.bias, self.gamma)
        else:
            y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
            y = y if self.gamma is None else y * self.gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))


@MODELS.register_module()
class ConvNeXt(BaseModule):
    """ConvNeXt V1 / V2 backbone returning a pyramid of normalised feature maps.

    Args:
        arch (str | dict): one of :data:`.arch_settings.ARCH_SETTINGS` or ``dict(depths=[4 ints],
            channels=[4 ints])``. Default ``'tiny'``.
        in_channels (int): input image channels. Default 3.
        drop_path_rate (float): stochastic depth of the last block; rates rise linearly from 0
            over all blocks. Default 0.
        layer_scale_init_value (float): initial layer scale; 0 disables it. Default 1e-6.
        out_indices (Sequence[int]): stages (0-3) whose outputs are returned, at strides
            4, 8, 16, 32 (capped at ``output_stride``); each gets its own LayerNorm ``norm{i}``.
            Stages after the last index are not built (no unused parameters under DDP).
            Default (0, 1, 2, 3).
        frozen_stages (int): -1 trains everything; k >= 0 freezes the stem and stages < k
            (with their downsampling layers): eval mode and ``requires_grad=False``. Default -1.
        norm_eval (bool): keep normalization layers in eval mode during training. ConvNeXt's
            LayerNorms have no running statistics, so this only fixes the module mode.
        with_cp (bool): gradient checkpointing of each block (less memory, more compute).
        use_grn (bool): ConvNeXt V2 blocks (use with ``layer_scale_init_value=0``).
        output_stride (int): 32, 16 or 8, the stride of the deepest stage. Below 32 the stages
            past it keep its resolution with dilated depthwise convs, as timm's
            ``output_stride`` (:func:`stage_geometry`); the parameters are the same, so every
            checkpoint loads. Default 32.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH_OR_URL,
            prefix=None)`` loads any published ConvNeXt checkpoint format; otherwise the official
            truncated-normal (std 0.02) initialisation is kept.

    Attributes:
        out_channels (list[int]): channels of each output, in ``out_indices`` order.
        out_strides (list[int]): stride (input pixels per output pixel) of each output.
    """

    def __init__(self, arch='tiny', in_channels=3, drop_path_rate=0., layer_scale_init_value=1e-6,
                 out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_eval=False, with_cp=False,
                 use_grn=False, output_stride=32, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.depths, self.channels = parse_arch(arch)
        self.out_indices = parse_out_indices(out_indices)
        num_stages = max(self.out_indices) + 1  # later stages would be unused parameters
        if not (isinstance(frozen_stages, int) and -1 <= frozen_stages <= num_stages):
            raise ValueError(f'frozen_stages={frozen_stages!r} is invalid; valid: -1 to '
                             f'{num_stages} (stages built for out_indices={self.out_indices})')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        strides, dilations = stage_geometry(output_stride)
        self.out_channels = [self.channels[i] for i in self.out_indices]
        self.out_strides = [strides[i] for i in self.out_indices]

        # Stem: 4x4 "patchify" conv, stride 4; then a LayerNorm + 2x2 conv per stage, stride 2
        # or, past output_stride, stride 1.
        stem = nn.Sequential(PatchifyConv(in_channels, self.channels[0], kernel_size=4),
                             LayerNorm2d(self.channels[0]))
        self.downsample_layers = nn.ModuleList([stem])
        for i in range(1, num_stages):
            c_in, c_out = self.channels[i - 1:i + 1]
            conv = (PatchifyConv(c_in, c_out, kernel_size=2) if strides[i] > strides[i - 1] else
                    ResolutionKeepingConv(c_in, c_out, dilation=dilations[i - 1]))
            self.downsample_layers.append(nn.Sequential(LayerNorm2d(c_in), conv))

        last = sum(self.depths) - 1  # rates in plain Python: buildable on the meta device
        rates = [drop_path_rate * k / max(last, 1) for k in range(last + 1)]
        starts = [sum(self.depths[:i]) for i in range(4)]
        self.stages = nn.ModuleList(
            nn.Sequential(*[
                Block(dim, rates[start + j], layer_scale_init_value, use_grn, dilation)
                for j in range(depth)])
            for dim, depth, start, dilation in zip(self.channels[:num_stages], self.depths, starts,
                                                   dilations))

        for i in self.out_indices:
            self.add_module(f'norm{i}', LayerNorm2d(self.channels[i]))

        self.apply(_init_official)
        self._freeze_stages()
        self._register_load_state_dict_pre_hook(_rename_other_layouts, with_module=True)

    def forward(self, x):
        """(N, in_channels, H, W) -> tuple of (N, C_i, H // s_i, W // s_i), one per i in
        ``out_indices``, with C_i in ``out_channels`` and s_i in ``out_strides`` (sizes are
        floored at every striding layer, as its conv does).

        The stages run channels_last; the outputs are returned contiguous (NCHW strides),
        because mmcv's ops (RoIAlign, deformable convs, ...) read raw NCHW memory and silently
        compute garbage from channels_last tensors.
        """
        x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        for i, (downsample, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = self._run_stage(stage, downsample(x))
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x).contiguous())
        return tuple(outs)

    def _run_stage(self, stage, x):
        if not (self.with_cp and self.training and x.requires_grad):
            return stage(x)
        for block in stage:
            x = cp.checkpoint(block, x, use_reentrant=False)
        return x

    def init_weights(self):
        """Load ``init_cfg`` of type ``Pretrained`` through the format converter."""
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            load_pretrained(self, self.init_cfg['checkpoint'], prefix=self.init_cfg.get('prefix'),
                            map_location=self.init_cfg.get('map_location', 'cpu'))
            self._is_init = True
        else:
            super().init_weights()

    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        frozen = list(self.downsample_layers[:max(self.frozen_stages, 1)])
        frozen += list(self.stages[:self.frozen_stages])
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, (nn.LayerNorm, GRN, nn.modules.batchnorm._BatchNorm)):
                    module.eval()
        return self


def parse_out_indices(out_indices):
    """Validate ``out_indices`` -> sorted tuple of distinct stage indices in 0..3."""
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    indices = tuple(out_indices)
    if (not indices or len(set(indices)) != len(indices)
            or not all(isinstance(i, int) and 0 <= i <= 3 for i in indices)):
        raise ValueError(f'out_indices={out_indices!r} is invalid; valid: distinct stage indices '
                         'from 0, 1, 2, 3 (negative indices are not accepted)')
    return tuple(sorted(indices))


def _rename_other_layouts(module, state_dict, prefix, *_):
    """Before any state-dict load (``load_from``, ``tools/test.py``, ``load_state_dict``): the
    backbone keys under ``prefix`` of another published layout, e.g. a whole mmdet / mmseg zoo
    model's mmpretrain backbone, renamed to ours (:func:`.checkpoint_formats.convert_in_place`)."""
    source_format = convert_in_place(state_dict, prefix)
    if source_format is not None:
        MMLogger.get_current_instance().info(
            f'{prefix or "ConvNeXt."}*: the checkpoint\'s {source_format} layout renamed to '
            'mmconvnext\'s')


def _init_official(module):
    """The official initialisation: truncated normal (std 0.02) weights, zero bias."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        trunc_normal_(module.weight, std=.02)
        nn.init.zeros_(module.bias)


register_downstream(ConvNeXt)

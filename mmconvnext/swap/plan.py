"""Planning a swap: the child config of a base with a ConvNeXt backbone, and its change lines."""
import os.path as osp
from collections import namedtuple

from mmconvnext.engine.optimizers.layer_decay_optim_wrapper_constructor import convnext_num_layers
from mmconvnext.models.backbones.arch_settings import ARCH_SETTINGS, V2_ONLY_ARCHS
from mmconvnext.models.backbones.convnext import stage_geometry
from mmconvnext.models.backbones.official_checkpoints import (dinov3_checkpoint_path,
                                                              official_checkpoint_url)
from .base_config import SCOPE_TASKS, base_reference, load_base_config, without_scope
from .errors import BackboneSwapError
from .normalisation import normalisation_overrides
from .probe import convnext_placement, probe_backbone
from .recipe import DECAY_TYPES, optimizer_overrides, paper_recipe
from .render import render_config
from .rewire import backbone_consumers, format_path, rewire_consumer, sparse_overrides

BackboneSwap = namedtuple('BackboneSwap', 'text changes scope base_cfg base_pyramid')
BackboneSwap.__doc__ = """A planned swap: ``text`` of the child config, ``changes`` (lines for
the user, one per change), ``scope`` ('mmdet' | 'mmseg'), the loaded base Config and its
backbone's probed [(channels, stride)]."""


def plan_backbone_swap(base, arch, pretrain='1k', output=None, v2=False):
    """Plan the child config of ``base`` with a ConvNeXt ``arch`` backbone.

    Args:
        base (str): config file or ``mmdet::`` / ``mmseg::`` path.
        arch (str): a name of :data:`ARCH_SETTINGS`.
        pretrain (str): '1k' / '22k' (the official ImageNet checkpoint), 'fcmae' (V2 only: the
            official self-supervised weights), 'dinov3' (V1 T / S / B / L only: the DINOv3
            file under ``checkpoints/``, DINOv3 License; the V1 paper's recipe of the arch),
            'none' (random init), or a local checkpoint file in any format ConvNeXt's
            ``init_cfg`` loads.
        output (str, optional): where the config will be written; a file ``base`` is referenced
            relative to its folder (absolute without ``output``).
        v2 (bool): a ConvNeXt V2 backbone (GRN, no layer scale) with the V2 paper's recipe and
            checkpoints; implied by an arch of :data:`V2_ONLY_ARCHS`. Default False.

    Returns:
        BackboneSwap. Raises :class:`BackboneSwapError` where the swap cannot be done faithfully.
    """
    if arch not in ARCH_SETTINGS:
        raise BackboneSwapError(f'unknown arch {arch!r}; valid: {", ".join(ARCH_SETTINGS)}')
    v2 = v2 or arch in V2_ONLY_ARCHS
    checkpoint = pretrained_checkpoint(arch, pretrain, v2)
    cfg, scope = load_base_config(base)
    task = SCOPE_TASKS[scope]
    model_cfg = without_scope(cfg.model.to_dict())
    base_backbone = model_cfg['backbone']
    pyramid = probe_backbone(cfg.model.backbone, scope)
    out_indices, output_stride = convnext_placement(pyramid, base_backbone)
    depths, channels = ARCH_SETTINGS[arch]
    new_channels = [channels[i] for i in out_indices]
    recipe, recipe_source = paper_recipe(task, arch, pretrain, v2)

    backbone = dict(_delete_=True, type='mmconvnext.ConvNeXt', arch=arch, out_indices=out_indices,
                    drop_path_rate=recipe.drop_path_rate)
    if v2:
        backbone.update(use_grn=True, layer_scale_init_value=0.)
    dilation = ''
    if output_stride != 32:
        backbone['output_stride'] = output_stride
        dilations = [stage_geometry(output_stride)[1][i] for i in out_indices]
        dilation = f', output_stride={output_stride} (depthwise-conv dilations {dilations})'
    if checkpoint is not None:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
    old_channels = [channels_ for channels_, _ in pyramid]
    changes = [
        f'model.backbone: {base_backbone.get("type")} (outputs of {old_channels} channels at '
        f'strides {[stride for _, stride in pyramid]}) -> mmconvnext.ConvNeXt '
        f'{"V2 (use_grn=True, layer_scale_init_value=0.) " if v2 else ""}arch={arch}, '
        f'out_indices={out_indices}{dilation} ({new_channels} channels at the same strides); '
        'the base backbone\'s settings are not carried over',
        f'model.backbone.drop_path_rate={recipe.drop_path_rate} and the optimizer: {recipe_source}',
        'model.backbone.init_cfg: ' + (f'Pretrained {checkpoint}' if checkpoint else
                                       'none (random initialisation)')]
    model = dict(backbone=backbone)
    model['data_preprocessor'], normalisation_change = normalisation_overrides(cfg)
    changes.append(normalisation_change)
    rewired = []
    consumers, others = backbone_consumers(model_cfg, old_channels)
    for path, consumer in consumers:
        rewired += rewire_consumer(path, consumer, old_channels, new_channels)
    changes += [f'{format_path(path)}: {old!r} -> {new!r}' for path, old, new in rewired]
    changes += [f'{format_path(path)}: left as is (no in_channels, no key with the base '
                "backbone's widths: it does not read the backbone)" for path in others]
    if model_cfg.get('pretrained') is not None:  # mmseg segmentors pass it to the backbone
        model['pretrained'] = None
        changes.append(f"model.pretrained: {model_cfg['pretrained']!r} (the base backbone's "
                       'weights) -> None')
    model.update(sparse_overrides(model_cfg, [path for path, _, _ in rewired]))

    optim_wrapper, optim_changes = optimizer_overrides(
        cfg.get('optim_wrapper'), recipe, DECAY_TYPES[task], convnext_num_layers(depths))
    changes += optim_changes
    text = render_config(base_reference(base, output), arch, pretrain, model, optim_wrapper, v2)
    return BackboneSwap(text, changes, scope, cfg, pyramid)


def pretrained_checkpoint(arch, pretrain, v2=False):
    """``init_cfg`` checkpoint for ``pretrain`` ('1k' | '22k' | 'fcmae' (``v2``) | 'dinov3' (not
    ``v2``) | 'none' | a local file), or None."""
    if pretrain == 'none':
        return None
    if pretrain == 'dinov3':
        if v2:
            raise BackboneSwapError('--pretrain dinov3: DINOv3 distilled ConvNeXt V1 blocks (layer '
                                    'scale, no GRN); swap in V1 (leave --v2 out)')
        try:
            return dinov3_checkpoint_path(arch)
        except ValueError as err:
            raise BackboneSwapError(str(err)) from None
    official = ('1k', '22k', 'fcmae') if v2 else ('1k', '22k', 'dinov3')
    if pretrain in official:
        try:
            return official_checkpoint_url(arch, pretrain, v2)
        except ValueError as err:
            raise BackboneSwapError(f'{err}; use --pretrain none or a checkpoint file') from None
    if not osp.isfile(pretrain):
        raise BackboneSwapError(f'--pretrain {pretrain!r} is not {", ".join(official)}, none or '
                                'an existing checkpoint file')
    return osp.abspath(pretrain)

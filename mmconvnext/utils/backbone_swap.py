"""Swap the backbone of any mmdet / mmseg config for ConvNeXt, keeping everything else.

:func:`plan_backbone_swap` reads the *loaded* base config. It runs the base backbone on a
``PROBE_SIZE`` x ``PROBE_SIZE`` probe image to learn the (channels, stride) of each output, maps
strides 4 / 8 / 16 / 32 to ConvNeXt stages 0 / 1 / 2 / 3 (so ``out_indices`` keep the base's
levels), rewrites the input channels of the modules that read the backbone (the first neck; with
no neck, every ``*head`` of the model), and replaces the optimizer with the paper's AdamW +
layer-wise (mmdet) / stage-wise (mmseg) lr decay. Its text is a short child config that inherits
the base and overrides only those keys; :func:`write_swapped_config` checks that the written file
loads, builds, extracts features and builds its optimizer before putting it in place.

Bases whose backbone outputs are not distinct strides out of 4..32 in increasing order (dilated
ResNets, ViT, extra stride-64 layers) or whose modules keep other keys tied to the old channels
are refused with :class:`BackboneSwapError`.
"""
import copy
import inspect
import math
import os
import os.path as osp
import tempfile
import traceback
import warnings
from collections import namedtuple

import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from mmconvnext.apis.inference_model import TASK_SCOPES
from mmconvnext.engine.optimizers.layer_decay_optim_wrapper_constructor import (CUSTOM_KEY_OPTIONS,
                                                                                convnext_num_layers)
from mmconvnext.engine.runner_setup import fit_optim_wrapper_to_device
from mmconvnext.models.backbones.convnext import ARCH_SETTINGS
from mmconvnext.models.backbones.official_checkpoints import official_checkpoint_url

#: default scope -> task of the paper recipe
SCOPE_TASKS = {scope: task for scope, (task, _) in TASK_SCOPES.items()}
#: task -> decay type of the paper recipe (COCO: layer-wise, ADE20K: stage-wise)
DECAY_TYPES = {'detection': 'layer_wise', 'segmentation': 'stage_wise'}
#: output stride of ConvNeXt stage i
STAGE_STRIDES = (4, 8, 16, 32)
#: side (pixels) of the square probe image the base backbone and the swapped model run on
PROBE_SIZE = 256
#: AdamW betas and weight decay of all paper recipes
ADAMW_BETAS, ADAMW_WEIGHT_DECAY = (0.9, 0.999), 0.05
#: paramwise_cfg multipliers of the base kept under the layer-decay constructor
KEPT_MULTIPLIERS = ('norm_decay_mult', 'bias_decay_mult')
#: paramwise_cfg keys of the base kept (custom_keys filtered: the backbone's are dropped)
KEPT_PARAMWISE_KEYS = ('custom_keys', ) + KEPT_MULTIPLIERS
LINE_WIDTH = 100

Recipe = namedtuple('Recipe', 'drop_path_rate lr decay_rate')
#: (task, arch, pretrain) -> the paper's fine-tuning recipe, as in configs/: detection from the
#: Cascade Mask R-CNN configs (the series covering every size), segmentation from UperNet's.
PAPER_RECIPES = {
    ('detection', 'tiny', '1k'): Recipe(0.4, 2e-4, 0.7),
    ('detection', 'small', '1k'): Recipe(0.6, 2e-4, 0.7),
    ('detection', 'base', '1k'): Recipe(0.7, 2e-4, 0.8),
    ('detection', 'base', '22k'): Recipe(0.6, 1e-4, 0.8),
    ('detection', 'large', '22k'): Recipe(0.7, 1e-4, 0.7),
    ('detection', 'xlarge', '22k'): Recipe(0.8, 1e-4, 0.7),
    ('segmentation', 'tiny', '1k'): Recipe(0.4, 1e-4, 0.9),
    ('segmentation', 'small', '1k'): Recipe(0.3, 1e-4, 0.9),
    ('segmentation', 'base', '1k'): Recipe(0.4, 1e-4, 0.9),
    ('segmentation', 'base', '22k'): Recipe(0.4, 1e-4, 0.9),
    ('segmentation', 'large', '22k'): Recipe(0.4, 1e-4, 0.9),
    ('segmentation', 'xlarge', '22k'): Recipe(0.4, 8e-5, 0.9),
}
#: archs the paper did not fine-tune -> the arch whose recipe they take
RECIPE_STAND_INS = {'atto': 'tiny', 'femto': 'tiny', 'pico': 'tiny', 'nano': 'tiny',
                    'huge': 'xlarge'}

BackboneSwap = namedtuple('BackboneSwap', 'text changes scope')
BackboneSwap.__doc__ = """A planned swap: ``text`` of the child config, ``changes`` (lines for
the user, one per change), ``scope`` ('mmdet' | 'mmseg')."""


class BackboneSwapError(ValueError):
    """The base config cannot take a ConvNeXt backbone faithfully, or the input is invalid."""


def load_base_config(base):
    """``base`` (a config file, or an ``mmdet::`` / ``mmseg::`` path) -> (Config, default scope).

    Raises :class:`BackboneSwapError` for a missing file, another scope, or no
    ``model.backbone``.
    """
    prefix, sep, _ = base.partition('::')
    if sep:
        if prefix not in SCOPE_TASKS:
            raise BackboneSwapError(f'base config {base!r}: only mmdet:: and mmseg:: package '
                                    f'configs are supported, not {prefix}::')
        try:
            cfg = get_config(base)
        except FileNotFoundError as err:
            raise BackboneSwapError(f'base config {base!r} not found: {err}') from None
    elif not osp.isfile(base):
        raise BackboneSwapError(f'base config {base!r} does not exist')
    else:
        cfg = Config.fromfile(base)
    scope = cfg.get('default_scope', prefix if sep else None)
    if scope not in SCOPE_TASKS:
        raise BackboneSwapError(f'base config {base!r} has default_scope={scope!r}; only mmdet and '
                                'mmseg configs can be swapped')
    if not isinstance(cfg.get('model'), dict) or not cfg.model.get('backbone'):
        raise BackboneSwapError(f'base config {base!r} has no model.backbone to replace')
    return cfg, scope


def probe_backbone(backbone_cfg, scope):
    """Build the backbone of ``backbone_cfg`` (without pretrained weights) and run it on a
    zero image of PROBE_SIZE x PROBE_SIZE -> [(channels, stride)] of its outputs, in order; the
    stride is None where the output size does not divide PROBE_SIZE."""
    init_default_scope(scope)
    name = backbone_cfg.get('type')
    try:
        backbone = revert_sync_batchnorm(MODELS.build(copy.deepcopy(backbone_cfg)))
        backbone.eval()  # not chained: some backbones' train() returns None
        with torch.no_grad():
            outs = backbone(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
    except Exception as err:  # any failure: the base backbone's outputs stay unknown
        raise BackboneSwapError(
            f'the base backbone {name} does not build or run on a {PROBE_SIZE}x{PROBE_SIZE} probe '
            f'image ({describe_error(err)}): its output pyramid is unknown') from err
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    if not outs or not all(isinstance(out, torch.Tensor) and out.ndim == 4 for out in outs):
        raise BackboneSwapError(f'the base backbone {name} does not return a sequence of '
                                '(N, C, H, W) feature maps')
    pyramid = []
    for out in outs:
        height, width = out.shape[-2:]
        divides = height == width and PROBE_SIZE % height == 0
        pyramid.append((out.shape[1], PROBE_SIZE // height if divides else None))
    return pyramid


def convnext_out_indices(pyramid, backbone_name):
    """ConvNeXt stages with the strides of the base backbone's outputs ``pyramid``."""
    strides = [stride for _, stride in pyramid]
    if all(stride in STAGE_STRIDES for stride in strides) and strides == sorted(set(strides)):
        return tuple(STAGE_STRIDES.index(stride) for stride in strides)
    if len(set(strides)) < len(strides):
        why = ('several outputs share a stride (a dilated backbone such as DeepLab\'s ResNet-D8, '
               'or a single-scale one such as ViT): ConvNeXt cannot dilate its stages; take a base '
               'config with an undilated feature pyramid')
    else:
        why = ('ConvNeXt has exactly one output at each stride 4, 8, 16, 32; a base backbone with '
               'other strides (extra layers, a stride-2 stem output) cannot be replaced')
    raise BackboneSwapError(
        f'the base backbone {backbone_name} outputs strides {strides} (channels '
        f'{[channels for channels, _ in pyramid]}) on a {PROBE_SIZE}x{PROBE_SIZE} image; {why}')


def backbone_consumers(model_cfg, old_channels):
    """(consumers, others): [(path, config)] of the modules reading the backbone's outputs, and
    the paths of the ``*head`` modules left as they are.

    The consumer is the first neck; with no neck, every ``*head`` of the model with an
    ``in_channels`` key. A head without one (e.g. MaskFormer's fusion head) is left as it is,
    unless a ``*channels`` key in it holds one of the base backbone's ``old_channels`` (e.g. the
    RoI extractor of a C4 detector's RoI head): then it may read the backbone and the swap is
    refused. ``path`` is a tuple of keys / list indices below ``model``.
    """
    neck = model_cfg.get('neck')
    if neck:
        return [(('neck', 0), neck[0])] if isinstance(neck, list) else [(('neck', ), neck)], []
    heads = []
    for key, value in model_cfg.items():
        if key.endswith('head') and isinstance(value, list):
            heads += [((key, index), item) for index, item in enumerate(value)]
        elif key.endswith('head') and isinstance(value, dict):
            heads.append(((key, ), value))
    consumers = [(path, head) for path, head in heads if 'in_channels' in head]
    if not consumers:
        raise BackboneSwapError('model has no neck and no *head with in_channels: cannot tell '
                                'which modules read the backbone outputs')
    others = [(path, head) for path, head in heads if 'in_channels' not in head]
    for path, head in others:
        for nested_path, node in nested_dicts(head, path):
            for key, value in node.items():
                widths = value if isinstance(value, (list, tuple)) else [value]
                if key.endswith('channels') and any(width in old_channels for width in widths):
                    raise BackboneSwapError(
                        f'{format_path(nested_path + (key, ))}={value!r} holds a width of the '
                        f'base backbone\'s outputs {old_channels}: {format_path(path)} may read '
                        'the backbone through a key this tool cannot map')
    return consumers, [path for path, _ in others]


def rewire_consumer(path, consumer, old_channels, new_channels):
    """Rewrite ``consumer``'s ``in_channels`` (and ``in_index``-selected levels) from the base
    backbone's ``old_channels`` to ``new_channels`` in place, and every nested ``in_channels``
    equal to the old value. Returns [(path, old, new)] of the rewritten keys."""
    where = format_path(path)
    if 'in_channels' not in consumer:
        raise BackboneSwapError(f'{where} ({consumer.get("type")}) reads the backbone but has no '
                                'in_channels: cannot map its input channels')
    old, index = consumer['in_channels'], consumer.get('in_index')
    if isinstance(old, (list, tuple)) and isinstance(index, (list, tuple)):
        expected, new = ([channels[i] for i in index] for channels in (old_channels, new_channels))
    elif isinstance(old, (list, tuple)) and index is None:
        expected, new = list(old_channels), list(new_channels)
    elif isinstance(old, int) and not isinstance(index, (list, tuple)):
        level = -1 if index is None else index  # mmseg heads and single-input necks: last level
        expected, new = old_channels[level], new_channels[level]
    else:
        raise BackboneSwapError(f'{where}: in_channels={old!r} with in_index={index!r} is a '
                                'combination this tool cannot map')
    if (list(old) if isinstance(old, (list, tuple)) else old) != expected:
        raise BackboneSwapError(
            f'{where}.in_channels={old!r} does not match the base backbone\'s outputs '
            f'{list(old_channels)}{"" if index is None else f" at in_index={index!r}"}: cannot '
            'tell how it reads the backbone')
    changes = [(path + ('in_channels', ), old, new)]
    consumer['in_channels'] = new
    for nested_path, node in nested_dicts(consumer, path):
        if node is not consumer and node.get('in_channels') == old:
            node['in_channels'] = new
            changes.append((nested_path + ('in_channels', ), old, new))
    return changes


def nested_dicts(value, path):
    """Yield (path, dict) for ``value`` and every dict nested in it (through dicts and lists)."""
    if isinstance(value, dict):
        yield path, value
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        yield from nested_dicts(item, path + (key, ))


def paper_recipe(task, arch, pretrain):
    """(Recipe, description) for ``arch``: the paper's row for (task, arch, pretrain), else for the
    same arch with the other pretraining, else for its stand-in arch (RECIPE_STAND_INS)."""
    source = RECIPE_STAND_INS.get(arch, arch)
    for data in (pretrain, '1k', '22k'):
        if (task, source, data) in PAPER_RECIPES:
            description = f"the paper's ConvNeXt-{source} ImageNet-{data.upper()} {task} recipe"
            if source != arch:
                description += f' (stand-in: the paper fine-tuned no {arch})'
            return PAPER_RECIPES[task, source, data], description
    raise BackboneSwapError(f'no paper recipe for arch {arch!r}')


def optimizer_overrides(base_optim_wrapper, recipe, decay_type, num_layers):
    """(optim_wrapper overrides, change lines): AdamW with the recipe's lr under the layer-decay
    constructor. The base's wrapper type, clip_grad and other wrapper keys are kept, and so are
    its ``custom_keys`` that do not address the backbone and its norm / bias decay multipliers;
    other paramwise keys are dropped (and listed)."""
    optimizer = dict(type='AdamW', lr=recipe.lr, betas=ADAMW_BETAS, weight_decay=ADAMW_WEIGHT_DECAY)
    paramwise_cfg = dict(decay_rate=recipe.decay_rate, decay_type=decay_type,
                         num_layers=num_layers)
    constructor = 'mmconvnext.LearningRateDecayOptimizerConstructor'
    if base_optim_wrapper is None:
        overrides = dict(type='OptimWrapper', optimizer=optimizer, constructor=constructor,
                         paramwise_cfg=paramwise_cfg)
        return overrides, [f'optim_wrapper: none in the base -> {one_line(overrides)}']
    base = without_scope(base_optim_wrapper.to_dict())
    if base.get('type', 'OptimWrapper') not in ('OptimWrapper', 'AmpOptimWrapper'):
        raise BackboneSwapError(f'optim_wrapper type {base["type"]!r}: only OptimWrapper and '
                                'AmpOptimWrapper bases can take the layer-decay constructor')
    base_paramwise = base.get('paramwise_cfg') or {}
    dropped = sorted(set(base_paramwise) - set(KEPT_PARAMWISE_KEYS) - set(paramwise_cfg))
    paramwise_cfg.update((key, base_paramwise[key]) for key in KEPT_MULTIPLIERS
                         if key in base_paramwise)
    custom_keys = {}
    for key, options in base_paramwise.get('custom_keys', {}).items():
        if key.startswith('backbone'):
            dropped.append(f'custom_keys[{key!r}] (layer decay sets the backbone lrs)')
        elif not set(options) <= set(CUSTOM_KEY_OPTIONS):
            raise BackboneSwapError(f'optim_wrapper.paramwise_cfg.custom_keys[{key!r}]={options} '
                                    'has options the layer-decay constructor does not support; '
                                    f'valid: {CUSTOM_KEY_OPTIONS}')
        else:
            custom_keys[key] = options
    if custom_keys:
        paramwise_cfg['custom_keys'] = custom_keys
    kept = {key: value for key, value in base.items()
            if key not in ('optimizer', 'paramwise_cfg', 'constructor')}
    changes = [
        f'optim_wrapper.optimizer: {one_line(base.get("optimizer"))} -> {one_line(optimizer)} '
        "(the paper's lr, for batch 16)",
        f'optim_wrapper.paramwise_cfg: {one_line(base_paramwise)} -> {one_line(paramwise_cfg)}',
        f'optim_wrapper: kept {one_line(kept)} from the base']
    if base.get('constructor') != constructor:
        changes.insert(1, f'optim_wrapper.constructor: {base.get("constructor", "default")} -> '
                          f'{constructor}')
    if dropped:
        changes.append(f'optim_wrapper.paramwise_cfg: dropped {", ".join(dropped)}')
    overrides = dict(optimizer=optimizer, constructor=constructor, paramwise_cfg=paramwise_cfg)
    for key in ('optimizer', 'paramwise_cfg'):  # _delete_ only where the base has the key
        if key in base:
            overrides[key] = dict(_delete_=True, **overrides[key])
    return overrides, changes


def plan_backbone_swap(base, arch, pretrain='1k', output=None):
    """Plan the child config of ``base`` with a ConvNeXt ``arch`` backbone.

    Args:
        base (str): config file or ``mmdet::`` / ``mmseg::`` path.
        arch (str): a name of :data:`ARCH_SETTINGS`.
        pretrain (str): '1k' / '22k' (the official ImageNet checkpoint), 'none' (random init), or
            a local checkpoint file in any format ConvNeXt's ``init_cfg`` loads.
        output (str, optional): where the config will be written; a file ``base`` is referenced
            relative to its folder (absolute without ``output``).

    Returns:
        BackboneSwap. Raises :class:`BackboneSwapError` where the swap cannot be done faithfully.
    """
    if arch not in ARCH_SETTINGS:
        raise BackboneSwapError(f'unknown arch {arch!r}; valid: {", ".join(ARCH_SETTINGS)}')
    checkpoint = pretrained_checkpoint(arch, pretrain)
    cfg, scope = load_base_config(base)
    task = SCOPE_TASKS[scope]
    model_cfg = without_scope(cfg.model.to_dict())
    base_backbone = model_cfg['backbone']
    pyramid = probe_backbone(cfg.model.backbone, scope)
    out_indices = convnext_out_indices(pyramid, base_backbone.get('type'))
    depths, channels = ARCH_SETTINGS[arch]
    new_channels = [channels[i] for i in out_indices]
    recipe, recipe_source = paper_recipe(task, arch, pretrain)

    backbone = dict(_delete_=True, type='mmconvnext.ConvNeXt', arch=arch, out_indices=out_indices,
                    drop_path_rate=recipe.drop_path_rate)
    if checkpoint is not None:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
    old_channels = [channels_ for channels_, _ in pyramid]
    changes = [
        f'model.backbone: {base_backbone.get("type")} (outputs of {old_channels} channels at '
        f'strides {[stride for _, stride in pyramid]}) -> mmconvnext.ConvNeXt arch={arch}, '
        f'out_indices={out_indices} ({new_channels} channels); the base backbone\'s settings '
        'are not carried over',
        f'model.backbone.drop_path_rate={recipe.drop_path_rate} and the optimizer: {recipe_source}',
        'model.backbone.init_cfg: ' + (f'Pretrained {checkpoint}' if checkpoint else
                                       'none (random initialisation)')]
    rewired = []
    consumers, others = backbone_consumers(model_cfg, old_channels)
    for path, consumer in consumers:
        rewired += rewire_consumer(path, consumer, old_channels, new_channels)
    changes += [f'{format_path(path)}: {old!r} -> {new!r}' for path, old, new in rewired]
    changes += [f'{format_path(path)}: left as is (no in_channels, no key with the base '
                "backbone's widths: it does not read the backbone)" for path in others]
    model = dict(backbone=backbone)
    if model_cfg.get('pretrained') is not None:  # mmseg segmentors pass it to the backbone
        model['pretrained'] = None
        changes.append(f"model.pretrained: {model_cfg['pretrained']!r} (the base backbone's "
                       'weights) -> None')
    model.update(sparse_overrides(model_cfg, [path for path, _, _ in rewired]))

    optim_wrapper, optim_changes = optimizer_overrides(
        cfg.get('optim_wrapper'), recipe, DECAY_TYPES[task], convnext_num_layers(depths))
    changes += optim_changes
    text = render_config(base_reference(base, output), arch, pretrain, model, optim_wrapper)
    return BackboneSwap(text, changes, scope)


def pretrained_checkpoint(arch, pretrain):
    """``init_cfg`` checkpoint for ``pretrain`` ('1k' | '22k' | 'none' | a local file), or None."""
    if pretrain == 'none':
        return None
    if pretrain in ('1k', '22k'):
        try:
            return official_checkpoint_url(arch, pretrain)
        except ValueError as err:
            raise BackboneSwapError(f'{err}; use --pretrain none or a checkpoint file') from None
    if not osp.isfile(pretrain):
        raise BackboneSwapError(f'--pretrain {pretrain!r} is not 1k, 22k, none or an existing '
                                'checkpoint file')
    return osp.abspath(pretrain)


def base_reference(base, output):
    """``_base_`` of the child: package paths as given; a file relative to ``output``'s folder
    where the two share a folder below the root (a repository, say), else absolute."""
    if '::' in base:
        return base
    base_path = osp.abspath(base)
    if output is None:
        return base_path
    folder = osp.dirname(osp.abspath(output))
    if osp.commonpath([base_path, folder]) == osp.sep:
        return base_path
    return osp.relpath(base_path, folder)


def sparse_overrides(model_cfg, paths):
    """The smallest ``model`` overrides setting the values at ``paths`` of ``model_cfg``: nested
    dicts down to each key; a list on the way is given whole (mmengine replaces lists)."""
    overrides = {}
    for path in paths:
        node, target = model_cfg, overrides
        for key in path[:-1]:
            node = node[key]
            if isinstance(node, list):
                target[key] = node
                break
            target = target.setdefault(key, {})
        else:
            target[path[-1]] = node[path[-1]]
    return overrides


def render_config(base_ref, arch, pretrain, model, optim_wrapper):
    """Text of the child config: a docstring, ``_base_``, ``custom_imports``, the overrides."""
    data = {'1k': 'ImageNet-1K pretrained', '22k': 'ImageNet-22K pretrained',
            'none': 'randomly initialised'}.get(pretrain, f'initialised from {pretrain}')
    lines = [
        f'"""ConvNeXt-{arch} ({data}) in place of the backbone of',
        f'{base_ref}.',
        '',
        'Written by tools/swap_backbone.py: the backbone, the input channels of the modules that',
        "read it and the paper's optimizer recipe (AdamW + learning-rate decay) override the base;",
        'everything else is inherited.',
        '"""',
        f'_base_ = {base_ref!r}',
        "custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)",
        '',
        f'model = {format_value(model, column=len("model = "))}',
        '',
        f'optim_wrapper = {format_value(optim_wrapper, column=len("optim_wrapper = "))}',
    ]
    return '\n'.join(lines) + '\n'


def format_value(value, indent=0, column=0, width=LINE_WIDTH):
    """``value`` as Python source: dicts as ``dict(...)`` (``{...}`` where a key is no
    identifier); one item per line, indented ``indent`` + 4, where the text starting at
    ``column`` would pass ``width``."""
    if isinstance(value, dict):
        if all(isinstance(key, str) and key.isidentifier() for key in value):
            prefixes, brackets = [f'{key}=' for key in value], ('dict(', ')')
        else:
            prefixes, brackets = [f'{key!r}: ' for key in value], ('{', '}')
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        prefixes, items = [''] * len(value), list(value)
        brackets = ('[', ']') if isinstance(value, list) else (
            '(', ',)' if len(value) == 1 else ')')
    else:
        return repr(value)
    inline = brackets[0] + ', '.join(
        prefix + format_value(item, width=math.inf)
        for prefix, item in zip(prefixes, items)) + brackets[1]
    if column + len(inline) + 2 <= width or not items:  # 2: room for closing brackets / comma
        return inline
    pad = indent + 4
    return brackets[0] + '\n' + ',\n'.join(
        ' ' * pad + prefix + format_value(item, pad, pad + len(prefix), width)
        for prefix, item in zip(prefixes, items)) + brackets[1]


def one_line(value):
    """``value`` as Python source on one line, for messages."""
    return format_value(value, width=math.inf)


def format_path(path):
    """('neck', 0, 'in_channels') -> 'model.neck[0].in_channels'."""
    return 'model' + ''.join(f'[{key}]' if isinstance(key, int) else f'.{key}' for key in path)


def without_scope(value):
    """``value`` without the ``_scope_`` keys mmengine adds to dicts from package bases."""
    if isinstance(value, dict):
        return {key: without_scope(item) for key, item in value.items() if key != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(without_scope(item) for item in value)
    return value


def describe_error(err):
    """``Type: message``; for a bare ``assert``, the failing source line and where it is."""
    if str(err):
        return f'{type(err).__name__}: {err}'
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return (f'{type(err).__name__} at {osp.basename(frame.filename)}:{frame.lineno}: '
            f'`{frame.line}`')


def check_swapped_config(path, scope):
    """Load the config at ``path``, build its model (no pretrained weights) and optimizer
    wrapper, and run the model's ``extract_feat`` (and mmseg decode heads) on a probe image.

    Returns the model's number of parameters. Raises :class:`BackboneSwapError` naming what
    failed, e.g. a module still expecting the old backbone's channels in another key.
    """
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', scope))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    step = 'building the model'
    try:
        model = revert_sync_batchnorm(MODELS.build(model_cfg))
        model.eval()
        step = 'extracting features (backbone + neck)'
        with torch.no_grad():
            feats = model.extract_feat(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
            for name in ('decode_head', 'auxiliary_head'):
                heads = getattr(model, name, None)
                for head in heads if isinstance(heads, torch.nn.ModuleList) else [heads]:
                    if head is not None and len(inspect.signature(head.forward).parameters) == 1:
                        step = f'running model.{name} ({type(head).__name__})'
                        head(feats)
        step = 'building the optimizer wrapper'
        with warnings.catch_warnings():  # its fp32-training warning: this only builds
            warnings.simplefilter('ignore')
            fit_optim_wrapper_to_device(cfg)
        build_optim_wrapper(model, cfg.optim_wrapper)
    except Exception as err:  # any failure means the swap is not faithful
        raise BackboneSwapError(
            f'the swapped config fails {step}: {describe_error(err)}. Some key other than the '
            'input channels this tool rewrites still depends on the base backbone') from err
    return sum(param.numel() for param in model.parameters())


def write_swapped_config(base, output, arch, pretrain='1k', force=False):
    """Plan the swap, write it to a temporary file beside ``output``, check it with
    :func:`check_swapped_config`, then move it to ``output``; nothing is left on failure.

    Returns the change lines followed by the check's result. Raises
    :class:`BackboneSwapError` for bad input (``output`` not ``.py``, existing without
    ``force``) or a swap that cannot be done faithfully.
    """
    if not output.endswith('.py'):
        raise BackboneSwapError(f'output {output!r} must be a .py config file')
    if osp.exists(output) and not force:
        raise BackboneSwapError(f'output {output!r} exists; pass --force to overwrite it')
    swap = plan_backbone_swap(base, arch, pretrain, output)
    folder = osp.dirname(osp.abspath(output))
    created, missing = [], folder  # folders made here (deepest first), removed on failure
    while not osp.isdir(missing):
        created.append(missing)
        missing = osp.dirname(missing)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix='.py', prefix='.swap_backbone_', dir=folder)
    try:
        with os.fdopen(handle, 'w') as file:
            file.write(swap.text)
        num_params = check_swapped_config(temporary, swap.scope)
        os.replace(temporary, output)
    except BaseException:
        os.remove(temporary)
        for path in created:
            os.rmdir(path)
        raise
    return swap.changes + [f'checked: {output} loads, builds ({num_params / 1e6:.2f}M parameters), '
                           'extracts features on a probe image and builds its optimizer']

"""The optimizer of the swapped config: the paper's fine-tuning recipe for the arch and task
(AdamW, drop-path rate, learning-rate decay), fitted into the base's optimizer wrapper; for a
ConvNeXt V2 backbone the V2 paper's recipe."""
from collections import namedtuple

from mmconvnext.engine.optimizers.layer_decay_optim_wrapper_constructor import CUSTOM_KEY_OPTIONS
from .base_config import without_scope
from .errors import BackboneSwapError
from .render import one_line

#: task -> decay type of the paper recipe (COCO: layer-wise, ADE20K: stage-wise)
DECAY_TYPES = {'detection': 'layer_wise', 'segmentation': 'stage_wise'}
#: AdamW betas and weight decay of all paper recipes
ADAMW_BETAS, ADAMW_WEIGHT_DECAY = (0.9, 0.999), 0.05
#: paramwise_cfg multipliers of the base kept under the layer-decay constructor
KEPT_MULTIPLIERS = ('norm_decay_mult', 'bias_decay_mult')
#: paramwise_cfg keys of the base kept (custom_keys filtered: the backbone's are dropped)
KEPT_PARAMWISE_KEYS = ('custom_keys', ) + KEPT_MULTIPLIERS

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

#: (task, arch, pretrain) -> the ConvNeXt V2 paper's recipe, as in configs/*convnextv2*
#: (Mask R-CNN, appendix A.3; UperNet, appendix A.4; values it only sweeps as chosen there).
V2_PAPER_RECIPES = {
    ('detection', 'base', '1k'): Recipe(0.5, 1e-4, 0.9),
    ('detection', 'large', '1k'): Recipe(0.5, 1e-4, 0.9),
    ('detection', 'huge', '1k'): Recipe(0.5, 1e-4, 0.9),
    ('segmentation', 'base', '1k'): Recipe(0.4, 1e-4, 0.9),
    ('segmentation', 'large', '1k'): Recipe(0.4, 1e-4, 0.9),
    ('segmentation', 'huge', '1k'): Recipe(0.4, 1e-4, 0.9),
    ('segmentation', 'huge', '22k'): Recipe(0.4, 1e-4, 0.9),
}
#: archs the V2 paper did not fine-tune on COCO / ADE20K -> the arch whose recipe they take
V2_RECIPE_STAND_INS = {'atto': 'base', 'femto': 'base', 'pico': 'base', 'nano': 'base',
                       'tiny': 'base'}


def paper_recipe(task, arch, pretrain, v2=False):
    """(Recipe, description) for ``arch``: the paper's row for (task, arch, pretrain), else for the
    same arch with other pretraining, else for its stand-in arch (RECIPE_STAND_INS); ``v2``: the
    same from the V2 paper (V2_PAPER_RECIPES, V2_RECIPE_STAND_INS)."""
    recipes, stand_ins, paper, name = (
        (V2_PAPER_RECIPES, V2_RECIPE_STAND_INS, 'V2 paper', 'ConvNeXt V2') if v2 else
        (PAPER_RECIPES, RECIPE_STAND_INS, 'paper', 'ConvNeXt'))
    source = stand_ins.get(arch, arch)
    for data in (pretrain, '1k', '22k'):
        if (task, source, data) in recipes:
            description = f"the {paper}'s {name}-{source} ImageNet-{data.upper()} {task} recipe"
            if source != arch:
                description += f' (stand-in: the {paper} fine-tuned no {arch})'
            return recipes[task, source, data], description
    raise BackboneSwapError(f'no {paper} recipe for arch {arch!r}')


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

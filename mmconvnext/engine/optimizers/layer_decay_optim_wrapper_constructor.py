"""Layer-wise / stage-wise learning-rate decay of the official ConvNeXt COCO / ADE20K fine-tuning.

With ``N = num_layers`` (3 + ceil(depths[2] / 3): 6 for tiny, 12 for small/base/large/xlarge),
every parameter gets a layer id:

====================  ==============  ==============
parameters            ``layer_wise``  ``stage_wise``
====================  ==============  ==============
downsample_layers.0   0               0
stages.0.*            1               1
downsample_layers.1   2               0
stages.1.*            2               2
downsample_layers.2   3               0
stages.2.j            3 + j // 3      3
downsample_layers.3   N               0
stages.3.*            N               4
everything else       N + 1           N + 1
====================  ==============  ==============

and ``lr = base_lr * decay_rate ** (N + 1 - id)``, weight decay 0 for 1-D parameters and biases,
``weight_decay`` otherwise: the groups of the official repository and of mmdet's / mmseg's
``LearningRateDecayOptimizerConstructor``. ``stage_wise`` uses the same N as ``layer_wise`` (the
official ADE20K configs: 6 for tiny, 12 for base), so stage 3 gets ``decay_rate ** (N - 3)``.
"""
import math

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

from mmconvnext.registry import OPTIM_WRAPPER_CONSTRUCTORS

DECAY_TYPES = ('layer_wise', 'stage_wise')
PARAMWISE_KEYS = ('decay_rate', 'decay_type', 'num_layers', 'custom_keys', 'bias_decay_mult',
                  'norm_decay_mult')
CUSTOM_KEY_OPTIONS = ('lr_mult', 'decay_mult')
#: module types whose parameters ``norm_decay_mult`` applies to (as in mmengine)
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
              nn.GroupNorm, nn.LayerNorm)


def convnext_num_layers(depths):
    """The recipe's N for a backbone of ``depths`` (4 ints): 3 + ceil(depths[2] / 3)."""
    return 3 + math.ceil(depths[2] / 3)


def convnext_layer_ids(backbone, decay_type, num_layers):
    """``{id(parameter): layer id}`` for the parameters of ``downsample_layers`` and ``stages``.

    Parameters of the backbone not listed (output norms ``norm{i}``) and of the rest of the model
    are not in the dict: their id is ``num_layers + 1``.
    """
    layer_wise = decay_type == 'layer_wise'
    ids = {}
    for k, layer in enumerate(backbone.downsample_layers):
        layer_id = (0, 2, 3, num_layers)[k] if layer_wise else 0
        ids.update((id(p), layer_id) for p in layer.parameters())
    for i, stage in enumerate(backbone.stages):
        for j, block in enumerate(stage):
            layer_id = (1, 2, 3 + j // 3, num_layers)[i] if layer_wise else i + 1
            ids.update((id(p), layer_id) for p in block.parameters())
    return ids


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LearningRateDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Optimizer wrapper with ConvNeXt layer-wise or stage-wise learning-rate decay.

    Use as ``optim_wrapper=dict(type='OptimWrapper' | 'AmpOptimWrapper', optimizer=dict(type=...,
    lr=..., weight_decay=...), constructor='mmconvnext.LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=12))``. The model needs
    a ConvNeXt backbone at ``model.backbone`` (``mmconvnext.ConvNeXt`` or ``mmpretrain.ConvNeXt``);
    DDP wrappers are unwrapped by the base class.

    ``paramwise_cfg``:

    - ``decay_rate`` (float in (0, 1], required): lr factor per layer id below the head.
    - ``decay_type`` (str): ``'layer_wise'`` (default, COCO recipe) or ``'stage_wise'`` (ADE20K).
    - ``num_layers`` (int, optional): N, inferred from ``backbone.depths``; a value that does not
      match the backbone raises ``ValueError``.
    - ``custom_keys`` (dict, optional): ``{substring of the parameter name: dict(lr_mult=1.,
      decay_mult=...)}``, the longest matching key wins (as in mmengine). ``lr_mult`` multiplies
      the decayed lr; ``decay_mult``, when given, sets the weight decay to
      ``weight_decay * decay_mult`` in place of the recipe's.
    - ``norm_decay_mult`` / ``bias_decay_mult`` (float, optional): weight decay
      ``weight_decay * mult`` for parameters of normalization layers / biases, in place of the
      recipe's 0 (custom keys take precedence, then norms, then biases, as in mmengine).

    Frozen parameters (``requires_grad=False``) are left out, as in mmengine and the official
    code. Groups are ordered by decreasing lr, so the first group, which mmengine's
    ``RuntimeInfoHook`` logs as ``lr``, has the largest one. The groups are logged as one table.
    """

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        cfg = self.paramwise_cfg
        unknown = sorted(set(cfg) - set(PARAMWISE_KEYS))
        if unknown:
            raise ValueError(f'paramwise_cfg keys {unknown} are not supported by '
                             f'LearningRateDecayOptimizerConstructor; valid: {PARAMWISE_KEYS}')
        self.decay_rate = cfg.get('decay_rate')
        if (isinstance(self.decay_rate, bool) or not isinstance(self.decay_rate, (int, float))
                or not 0 < self.decay_rate <= 1):
            raise ValueError(f'paramwise_cfg decay_rate={self.decay_rate!r} is invalid; a number '
                             'in (0, 1] is required, e.g. 0.7 (COCO, base) or 0.9 (ADE20K)')
        self.decay_type = cfg.get('decay_type', 'layer_wise')
        if self.decay_type not in DECAY_TYPES:
            raise ValueError(f'paramwise_cfg decay_type={self.decay_type!r} is unknown; valid: '
                             "'layer_wise' (COCO recipe) or 'stage_wise' (ADE20K recipe)")
        custom_keys = cfg.get('custom_keys', {})
        for key, options in custom_keys.items():
            if not isinstance(options, dict) or not set(options) <= set(CUSTOM_KEY_OPTIONS):
                raise ValueError(f'custom_keys[{key!r}]={options!r} is not supported; valid: a '
                                 f'dict with keys from {CUSTOM_KEY_OPTIONS}')
        # longest key first, ties alphabetically: the matching order of mmengine
        self.custom_keys = sorted(sorted(custom_keys), key=len, reverse=True)
        if self.base_lr is None or self.base_wd is None:
            raise ValueError('LearningRateDecayOptimizerConstructor needs explicit lr and '
                             f'weight_decay in the optimizer config; got {self.optimizer_cfg}')

    def add_params(self, params, module, **kwargs):
        """Append one param group per (layer id, lr multiplier, weight decay) to ``params``.

        Args:
            params (list[dict]): param groups, extended in place with ``params``, ``lr`` and
                ``weight_decay`` keys.
            module (nn.Module): the (unwrapped) model, with a ConvNeXt at ``module.backbone``.
            **kwargs: the base class's recursion arguments, unused.
        """
        backbone = getattr(module, 'backbone', None)
        if not all(hasattr(backbone, attr) for attr in ('depths', 'downsample_layers', 'stages')):
            raise TypeError(
                'LearningRateDecayOptimizerConstructor needs a ConvNeXt-style backbone (attributes '
                'depths, downsample_layers, stages) at model.backbone; '
                f'{type(module).__name__}.backbone is {type(backbone).__name__}')
        num_layers = self._num_layers(backbone.depths)
        layer_ids = convnext_layer_ids(backbone, self.decay_type, num_layers)

        groups = {}  # (layer id, lr multiplier, weight decay) -> parameters
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            owner = module.get_submodule(name.rpartition('.')[0])
            key = (layer_ids.get(id(param), num_layers + 1),
                   *self._lr_mult_and_weight_decay(name, param, owner))
            groups.setdefault(key, []).append(param)

        def lr_scale(key):
            layer_id, lr_mult, _ = key
            return self.decay_rate**(num_layers + 1 - layer_id) * lr_mult

        ordered = sorted(groups, key=lambda k: (-lr_scale(k), -k[0], -k[2]))
        params.extend(
            dict(params=groups[k], lr=self.base_lr * lr_scale(k), weight_decay=k[2])
            for k in ordered)
        self._log_groups([(k, lr_scale(k), groups[k]) for k in ordered], num_layers)

    def _num_layers(self, depths):
        expected = convnext_num_layers(depths)
        given = self.paramwise_cfg.get('num_layers', expected)
        if isinstance(given, bool) or given != expected:
            raise ValueError(
                f'paramwise_cfg num_layers={given!r} does not match the backbone: depths='
                f'{tuple(depths)} needs num_layers={expected} (3 + ceil(depths[2] / 3), for both '
                'decay types); leave num_layers out to infer it')
        return expected

    def _lr_mult_and_weight_decay(self, name, param, owner):
        """(lr multiplier, weight decay) of parameter ``name`` of module ``owner``."""
        cfg = self.paramwise_cfg
        is_bias = name.rpartition('.')[2] == 'bias'
        recipe_wd = 0. if param.ndim == 1 or is_bias else self.base_wd
        for key in self.custom_keys:
            if key in name:
                options = cfg['custom_keys'][key]
                weight_decay = (self.base_wd * options['decay_mult']
                                if 'decay_mult' in options else recipe_wd)
                return options.get('lr_mult', 1.), weight_decay
        if cfg.get('norm_decay_mult') is not None and isinstance(owner, NORM_TYPES):
            return 1., self.base_wd * cfg['norm_decay_mult']
        if cfg.get('bias_decay_mult') is not None and is_bias:
            return 1., self.base_wd * cfg['bias_decay_mult']
        return 1., recipe_wd

    def _log_groups(self, rows, num_layers):
        """Log one table: group, layer id, lr scale (lr / base lr), weight decay, #params."""
        lines = [
            (f'LearningRateDecayOptimizerConstructor: {self.decay_type}, decay_rate='
             f'{self.decay_rate}, num_layers={num_layers}, lr={self.base_lr:g}, weight_decay='
             f'{self.base_wd:g}; {len(rows)} param groups in optimizer order:'),
            f'{"group":<28}{"layer id":>9}{"lr scale":>12}{"weight decay":>14}{"#params":>12}'
        ]
        for (layer_id, lr_mult, weight_decay), scale, params in rows:
            if lr_mult == 1 and weight_decay in (0, self.base_wd):
                name = f'layer_{layer_id}_{"decay" if weight_decay else "no_decay"}'
            else:
                name = f'layer_{layer_id}_lr_mult{lr_mult:g}_wd{weight_decay:g}'
            numel = sum(p.numel() for p in params)
            lines.append(f'{name:<28}{layer_id:>9}{scale:>12.6g}{weight_decay:>14g}{numel:>12,}')
        MMLogger.get_current_instance().info('\n'.join(lines))

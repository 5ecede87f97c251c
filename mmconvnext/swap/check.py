"""Checking the written config: it loads, builds, runs at the base's strides and builds its
optimizer; and its model's #params / FLOPs beside the base's."""
import copy
import inspect
import warnings

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from mmconvnext.analysis import default_input_size, measure_complexity
from mmconvnext.engine.runner_setup import fit_optim_wrapper_to_device
from .errors import BackboneSwapError, describe_error
from .probe import PROBE_SIZE, run_on_probe


def check_swapped_config(path, scope, base_pyramid):
    """Load the config at ``path``, build its model (no pretrained weights) and optimizer
    wrapper, run its backbone and its ``extract_feat`` (and mmseg decode heads) on a probe image.

    The backbone's declared ``out_strides`` and its probed outputs must have the strides of the
    base backbone's outputs ``base_pyramid`` ([(channels, stride)]). Returns the model's number of
    parameters. Raises :class:`BackboneSwapError` naming what failed, e.g. a module still
    expecting the old backbone's channels in another key.
    """
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', scope))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    base_strides = [stride for _, stride in base_pyramid]
    step = 'building the model'
    try:
        model = revert_sync_batchnorm(MODELS.build(model_cfg))
        step = 'running the backbone'
        probed = [stride for _, stride in run_on_probe(model.backbone, 'ConvNeXt')]
        if not model.backbone.out_strides == probed == base_strides:
            raise BackboneSwapError(
                f'the ConvNeXt backbone declares strides {model.backbone.out_strides} and '
                f'outputs strides {probed}, the base backbone {base_strides}')
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


def complexity_line(base_cfg, path):
    """'#params / FLOPs at HxW: base ... -> swapped ...' of the base config ``base_cfg`` and the
    config at ``path`` at the base's test size (:func:`mmconvnext.analysis.default_input_size`),
    counted by :func:`mmconvnext.analysis.measure_complexity`; or why they were not counted."""
    try:
        width, height = default_input_size(base_cfg)
        figures = [measure_complexity(copy.deepcopy(cfg), (width, height))
                   for cfg in (base_cfg, Config.fromfile(path))]
    except Exception as err:  # counting is a report: the config is written and checked
        return f'#params / FLOPs: not counted ({describe_error(err)})'
    base, swapped = (f'{params / 1e6:.2f}M / {flops / 1e9:.1f}G' for params, flops in figures)
    return (f'#params / FLOPs at {height}x{width} (HxW, the base\'s test size): base {base} -> '
            f'swapped {swapped}')

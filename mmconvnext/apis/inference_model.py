"""The eval-mode model of an mmdet or mmseg config, built by that package's own inference API.

The config's ``default_scope`` picks the API: ``mmdet.apis.init_detector`` or
``mmseg.apis.init_model``. Both load a checkpoint leniently (mmengine only warns about missing,
unexpected or differently shaped keys); here a checkpoint must fit the model exactly.
"""
import copy
import os.path as osp
import re
from importlib import import_module

from mmengine.runner import CheckpointLoader

from mmconvnext.models.backbones.checkpoint_formats import summarise_keys

#: default_scope -> (task, the package's model initialiser in ``<scope>.apis``).
TASK_SCOPES = dict(mmdet=('detection', 'init_detector'), mmseg=('segmentation', 'init_model'))


def config_scope(cfg):
    """The config's ``default_scope`` if it is a key of :data:`TASK_SCOPES`, else ``ValueError``."""
    scope = cfg.get('default_scope')
    if scope not in TASK_SCOPES:
        supported = ', '.join(f'{key} ({task})' for key, (task, _) in TASK_SCOPES.items())
        raise ValueError(f'default_scope {scope!r} is not supported; supported: {supported}')
    return scope


def checkpoint_misfit(model, checkpoint):
    """How the weights of the ``checkpoint`` file fail to fit ``model`` exactly; '' if they fit.

    Reads the checkpoint's ``state_dict`` (or the whole file) with mmengine's ``module.`` prefix
    removal, and compares its keys and shapes with ``model.state_dict()``.
    """
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu', logger='silent')
    loaded = {re.sub(r'^module\.', '', key): value
              for key, value in loaded.get('state_dict', loaded).items()}
    expected = model.state_dict()
    problems = []
    missing = [key for key in expected if key not in loaded]
    if missing:
        problems.append(f'it lacks weights of {summarise_keys(missing)}')
    unexpected = [key for key in loaded if key not in expected]
    if unexpected:
        problems.append(f'it has weights the model lacks, of {summarise_keys(unexpected)}')
    resized = [key for key, tensor in expected.items()
               if key in loaded and getattr(loaded[key], 'shape', None) != tensor.shape]
    if resized:
        key = resized[0]
        problems.append(f'{len(resized)} shapes differ, first {key}: checkpoint '
                        f'{tuple(getattr(loaded[key], "shape", ()))}, model '
                        f'{tuple(expected[key].shape)}')
    return '; '.join(problems)


def init_inference_model(cfg, checkpoint=None, device='cpu'):
    """The model of ``cfg`` in eval mode on ``device``, through the scope's API (``cfg`` is copied).

    With ``checkpoint`` (a local file), its weights and its ``dataset_meta`` (classes, palette)
    as the API sets them; then ``ValueError`` if the checkpoint does not fit the model exactly
    (:func:`checkpoint_misfit`). Without, random weights. Raises ``FileNotFoundError`` for a
    missing checkpoint, ``ValueError`` for a scope not in :data:`TASK_SCOPES`.
    """
    scope = config_scope(cfg)
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
    init = getattr(import_module(f'{scope}.apis'), TASK_SCOPES[scope][1])
    model = init(copy.deepcopy(cfg), checkpoint, device=device)
    misfit = checkpoint is not None and checkpoint_misfit(model, checkpoint)
    if misfit:
        raise ValueError(f'checkpoint {checkpoint} does not fit the model of the config: {misfit}')
    return model

"""One training iteration of a config, as mmengine's runner runs it, on a synthetic batch: what
``tools/analysis/benchmark_train.py`` times and profiles.

A config is named as ``tools/train.py`` takes it (a file), as a package config
(``mmdet::convnext/...py``, ``mmseg::convnext/...py``: mmdet's and mmseg's own ConvNeXt recipes)
or as ``timm:CONFIG`` (that config with timm's ConvNeXt of the same size in place of its
backbone, :mod:`.timm_convnext`); ``@KEY=VALUE`` suffixes make a variant of it, each merged in as
``--cfg-options`` would (e.g. ``configs/cascade_convnext_t.py@optim_wrapper.dtype=bfloat16``).

:func:`build_training` builds what the runner builds for a non-distributed run: the model
with its initial (random) weights, pretrained ``init_cfg`` left out; SyncBN reverted to BN; the
config's optim wrapper through its constructor (layer decay); ``AmpOptimWrapper`` kept on CUDA
and replaced by ``OptimWrapper`` elsewhere, as ``tools/train.py`` does.
:func:`training_iteration` is the runner's iteration: ``model.train_step`` (data preprocessor,
forward, losses, backward, optimizer step) and the conversion of every logged value to a float
(mmengine's ``RuntimeInfoHook``: one host-device synchronisation per value).

Synthetic batches (:func:`synthetic_batch`), shaped like the recipe's largest training input:

- detection (mmdet ``DetDataSample``): ``batch`` uint8 images of the largest (short, long) side
  of the train pipeline's resizes (800 x 1333 for the COCO recipes), ``objects`` boxes per image
  (default 7, COCO train's mean of 7.3 annotations per image) with bitmap masks and labels of the
  config's classes;
- segmentation (mmseg ``SegDataSample``): images of the train pipeline's crop (512 x 512 /
  640 x 640) with a label map of 32 x 32-pixel patches of random classes, 1/16 of them ``255``.
"""
import copy
from typing import NamedTuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.utils import import_modules_from_strings

from mmconvnext.apis.inference_model import TASK_SCOPES, config_scope
from mmconvnext.engine.runner_setup import fit_optim_wrapper_to_device, read_config

#: The prefix of a config name that swaps timm's ConvNeXt into that config.
TIMM_PREFIX = 'timm:'
#: COCO train2017's mean number of annotations per image (860,001 / 118,287), rounded.
COCO_OBJECTS_PER_IMAGE = 7


class Training(NamedTuple):
    """A built config: ``cfg`` (the resolved Config), ``task`` ('detection' / 'segmentation'),
    ``model`` (on its device, train mode) and ``optim_wrapper``."""
    cfg: Config
    task: str
    model: torch.nn.Module
    optim_wrapper: object


def load_named_config(name, cfg_options=None):
    """The Config a name stands for (see the module doc), ``cfg_options`` merged in, then the
    name's own ``@KEY=VALUE`` options."""
    name, *variant = name.split('@')
    timm = name.startswith(TIMM_PREFIX)
    path = name[len(TIMM_PREFIX):] if timm else name
    if '::' in path:
        cfg = get_config(path)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    else:
        cfg = read_config(path, cfg_options)
    if variant:
        cfg.merge_from_dict(variant_options(variant))
    if timm:
        from .timm_convnext import swap_in_timm_convnext
        swap_in_timm_convnext(cfg)
    return cfg


def variant_options(items):
    """``['KEY=VALUE', ...]`` -> {KEY: value}, values parsed as ``--cfg-options`` parses them."""
    options = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ValueError(f'variant option {item!r}: expected @KEY=VALUE')
        options[key] = DictAction._parse_iterable(value)
    return options


def config_task(cfg):
    """'detection' (mmdet scope) or 'segmentation' (mmseg scope); ValueError otherwise."""
    return TASK_SCOPES[config_scope(cfg)][0]


def build_training(cfg, device, seed=0):
    """The :class:`Training` of ``cfg`` on ``device`` (see the module doc)."""
    task = config_task(cfg)
    cfg = copy.deepcopy(cfg)
    import_modules_from_strings(**cfg.get('custom_imports', dict(imports=[])))
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None  # no pretrained weights (as measure_complexity)
    fit_optim_wrapper_to_device(cfg, cuda=torch.device(device).type == 'cuda')
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model = revert_sync_batchnorm(model.to(device))
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return Training(cfg, task, model, optim_wrapper)


def largest_train_shape(cfg):
    """(H, W) of the largest input the train pipeline makes: the largest (long, short) sides of
    its resizes (landscape), or its crop for a pipeline that crops to a fixed size (mmseg)."""
    pipeline = cfg.train_dataloader.dataset.get('pipeline')
    if pipeline is None:
        raise ValueError('train_dataloader.dataset has no pipeline')
    scales, crops = [], []

    def walk(item):
        if isinstance(item, (list, tuple)):
            for element in item:
                walk(element)
        elif isinstance(item, dict):
            kind = str(item.get('type', '')).split('.')[-1]
            if kind == 'RandomCrop' and item.get('cat_max_ratio') is not None:
                crops.append(tuple(item['crop_size']))  # mmseg's fixed-size crop
            if 'Resize' in kind:
                scales.extend([item['scale']] if 'scale' in item else item.get('scales', []))
            for value in item.values():
                walk(value)

    walk(pipeline)
    if crops:
        return max(crops, key=lambda hw: hw[0] * hw[1])
    if not scales:
        raise ValueError('the train pipeline has neither a resize scale nor a fixed-size crop')
    long_side = max(max(scale) for scale in scales)
    short_side = max(min(scale) for scale in scales)
    return short_side, long_side


def synthetic_batch(task, shape, batch_size, num_classes, objects=COCO_OBJECTS_PER_IMAGE,
                    seed=0):
    """A collated batch (``inputs``: uint8 (3, H, W) tensors, ``data_samples``) for
    ``model.train_step`` (see the module doc). ``shape``: (H, W)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, height, width), dtype=np.uint8)))
        if task == 'detection':
            samples.append(_detection_sample(rng, height, width, num_classes, objects))
        else:
            samples.append(_segmentation_sample(rng, height, width, num_classes))
    return dict(inputs=inputs, data_samples=samples)


def _detection_sample(rng, height, width, num_classes, objects):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    corners = rng.uniform(0, 0.7, (objects, 2)) * (width, height)
    sizes = rng.uniform(0.05, 0.3, (objects, 2)) * (width, height)
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
    masks = np.zeros((objects, height, width), dtype=np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        mask[y1:y2, x1:x2] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                         scale_factor=(1., 1.), flip=False))
    sample.gt_instances = InstanceData(
        bboxes=torch.from_numpy(boxes),
        labels=torch.from_numpy(rng.integers(0, num_classes, objects)),
        masks=BitmapMasks(masks, height, width))
    sample.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4))
    return sample


def _segmentation_sample(rng, height, width, num_classes):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    patch = 32
    patches = rng.integers(0, num_classes, (-(-height // patch), -(-width // patch)))
    patches[rng.random(patches.shape) < 1 / 16] = 255
    label_map = np.kron(patches, np.ones((patch, patch), dtype=patches.dtype))[:height, :width]
    sample = SegDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width),
                                         pad_shape=(height, width), flip=False))
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(label_map[None]).long())
    return sample


def num_classes(cfg, task):
    """The config's number of classes (mmdet: the RoI / bbox head's, mmseg: the decode head's)."""
    model = cfg.model
    if task == 'segmentation':
        return model.decode_head.num_classes
    heads = model.get('roi_head', {}).get('bbox_head', model.get('bbox_head'))
    head = heads[0] if isinstance(heads, (list, tuple)) else heads
    if head is None or 'num_classes' not in head:
        raise ValueError('the model config names no num_classes in roi_head.bbox_head / bbox_head')
    return head['num_classes']


def training_iteration(training, batch):
    """Run one training iteration on (a deep copy of) ``batch``; returns the logged floats."""
    batch = copy.deepcopy(batch)  # the data preprocessor pads masks in place
    log_vars = training.model.train_step(batch, optim_wrapper=training.optim_wrapper)
    return {key: value.item() for key, value in log_vars.items()}


def persistent_bytes(training):
    """Bytes held between iterations: parameters, buffers and optimizer state tensors."""
    tensors = list(training.model.parameters()) + list(training.model.buffers())
    for state in training.optim_wrapper.optimizer.state.values():
        tensors.extend(value for value in state.values() if torch.is_tensor(value))
    return sum(t.numel() * t.element_size() for t in tensors)

"""Shared test helpers: tiny datasets in the real COCO / ADE20K layouts, slimmed configs, tool
runs on them, and numeric comparison (relative error)."""
import copy
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import Config

from mmconvnext.engine.runner_setup import fit_optim_wrapper_to_device

#: The repository's configs and tools folders.
CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs'
TOOLS_DIR = Path(__file__).resolve().parents[1] / 'tools'

#: ConvNeXt-T's depths (the real layer-decay groups) at 1/12 of its widths.
NARROW_TINY_ARCH = dict(depths=[3, 3, 9, 3], channels=[8, 16, 32, 64])
#: Every resize and crop size of the recipes is divided by this for the tiny images.
SIZE_DIVISOR = 8


def divide_sizes(transform_cfg):
    """Divide every resize / crop size in a (nested) pipeline config by ``SIZE_DIVISOR``."""
    if isinstance(transform_cfg, list):
        for item in transform_cfg:
            if isinstance(item, (list, dict)):
                divide_sizes(item)
        return
    for key, value in transform_cfg.items():
        if key in ('scale', 'crop_size', 'stride', 'size'):
            transform_cfg[key] = tuple(side // SIZE_DIVISOR for side in value)
        elif key == 'scales':
            transform_cfg[key] = [tuple(side // SIZE_DIVISOR for side in size) for size in value]
        elif isinstance(value, (list, dict)):
            divide_sizes(value)


def tiny_images(rng, count, width=96, height=64):
    """``count`` random BGR images with a different bright rectangle each, and the rectangles."""
    images, boxes = [], []
    for index in range(count):
        image = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        x, y, w, h = 8 + 16 * index, 8 + 4 * index, 40, 32
        image[y:y + h, x:x + w] = (200, 180, 160)
        images.append(image)
        boxes.append((x, y, w, h))
    return images, boxes


def write_coco(root, rng):
    """Two images with one polygon instance each; the same json serves train and val.

    mmdet is imported here, not at the top: mmdet.datasets needs mmcv's compiled ops, and the
    CUDA backbone tests (conftest imports this module) run without them."""
    from mmdet.datasets import CocoDataset
    (root / 'images').mkdir(parents=True)
    images, boxes = tiny_images(rng, 2)
    classes = CocoDataset.METAINFO['classes']
    coco = dict(images=[], annotations=[], categories=[
        dict(id=index, name=name) for index, name in enumerate(classes, start=1)])
    for index, (image, (x, y, w, h)) in enumerate(zip(images, boxes), start=1):
        cv2.imwrite(str(root / 'images' / f'{index}.jpg'), image)
        coco['images'].append(dict(id=index, file_name=f'{index}.jpg', height=image.shape[0],
                                   width=image.shape[1]))
        coco['annotations'].append(dict(
            id=index, image_id=index, category_id=index, bbox=[x, y, w, h], area=w * h,
            iscrowd=0, segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    (root / 'instances.json').write_text(json.dumps(coco))


def slim_rcnn(model_cfg, width=64):
    """The detector on the narrow backbone with FPN / RoI heads ``width`` channels wide, 256-wide
    FCs, 128 sampled RoIs per stage and 100 proposals. Every box is kept at test time (an
    iteration-old detector scores all classes below mmdet's 0.05 threshold)."""
    model_cfg.neck.update(in_channels=NARROW_TINY_ARCH['channels'], out_channels=width)
    model_cfg.rpn_head.update(in_channels=width, feat_channels=width)
    roi_head = model_cfg.roi_head
    roi_head.bbox_roi_extractor.out_channels = width
    roi_head.mask_roi_extractor.out_channels = width
    bbox_heads = roi_head.bbox_head if isinstance(roi_head.bbox_head, list) else [
        roi_head.bbox_head]
    for bbox_head in bbox_heads:
        bbox_head.update(in_channels=width, fc_out_channels=256)
        if 'conv_out_channels' in bbox_head:
            bbox_head.conv_out_channels = width
    roi_head.mask_head.update(in_channels=width, conv_out_channels=width)
    train_cfg, test_cfg = model_cfg.train_cfg, model_cfg.test_cfg
    for stage in train_cfg.rcnn if isinstance(train_cfg.rcnn, list) else [train_cfg.rcnn]:
        stage.sampler.num = 128
    train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    test_cfg.rcnn.score_thr = 0.


def write_ade(root, rng):
    """ADEChallengeData2016 layout, two images per split; labels 0 (ignored) and classes 1..150."""
    images, boxes = tiny_images(rng, 4)
    for split, indices in (('training', (0, 1)), ('validation', (2, 3))):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for index in indices:
            x, y, w, h = boxes[index]
            label = np.full(images[index].shape[:2], 3, dtype=np.uint8)
            label[:4] = 0
            label[y:y + h, x:x + w] = 150 - index
            cv2.imwrite(str(root / 'images' / split / f'{index}.jpg'), images[index])
            cv2.imwrite(str(root / 'annotations' / split / f'{index}.png'), label)


@lru_cache
def _parse_config(name):
    return Config.fromfile(CONFIG_DIR / f'{name}.py')


def load_config(name):
    return copy.deepcopy(_parse_config(name))


def narrow_on_tiny_data(cfg, data_root, splits):
    """A narrow ConvNeXt-T without pretrained weights, seed 0; the dataloaders ``splits`` read
    the tiny dataset at ``data_root`` in the main process, with sizes / ``SIZE_DIVISOR``."""
    cfg.model.backbone.update(arch=NARROW_TINY_ARCH, init_cfg=None)
    cfg.randomness = dict(seed=0)
    for split in splits:
        loader = cfg[split]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.data_root = str(data_root)
        divide_sizes(loader.dataset.pipeline)


def prepare_tiny_run(cfg, tmp_path, data_root):
    """``cfg`` on CPU on the tiny dataset at ``data_root`` (:func:`narrow_on_tiny_data`, every
    split), no checkpoints."""
    cfg.work_dir = str(tmp_path / 'work_dir')
    narrow_on_tiny_data(cfg, data_root, ('train_dataloader', 'val_dataloader', 'test_dataloader'))
    fit_optim_wrapper_to_device(cfg)
    cfg.default_hooks.checkpoint = None


def slim_upernet(cfg, width):
    """UperNet heads on the narrow backbone, ``width`` / ``width // 2`` channels (decode /
    auxiliary); crop, sliding window and test-time scales / ``SIZE_DIVISOR``."""
    model = cfg.model
    channels = NARROW_TINY_ARCH['channels']
    model.decode_head.update(in_channels=channels, channels=width)
    model.auxiliary_head.update(in_channels=channels[2], channels=width // 2)
    divide_sizes([model.data_preprocessor, model.test_cfg, cfg.tta_pipeline])


def tiny_upernet_run(tmp_path, name='upernet_convnext_t'):
    """The UperNet config ``name`` on a tiny ADE20K: narrow backbone, 64 / 32-channel heads,
    sizes / 8."""
    data_root = tmp_path / 'ADEChallengeData2016'
    write_ade(data_root, np.random.default_rng(0))
    cfg = load_config(name)
    prepare_tiny_run(cfg, tmp_path, data_root)
    slim_upernet(cfg, 64)
    return cfg


# --- tool runs on tiny datasets -------------------------------------------------------------

#: Seconds a tool run may take in a test.
TIMEOUT_S = 240


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def tool_env(**extra):
    """The environment of a tool run: this interpreter as PYTHON, a free PORT, ``extra``."""
    return {**os.environ, 'PYTHON': sys.executable, 'PORT': str(free_port()), **extra}


def run_tool(*args, expect_ok=True, env=None):
    """Run ``tools/<args[0]>`` with ``args[1:]``; its CompletedProcess (stdout + stderr)."""
    tool = TOOLS_DIR / args[0]
    command = [str(tool)] if tool.suffix == '.sh' else [sys.executable, str(tool)]
    result = subprocess.run([*command, *map(str, args[1:])], env=env or tool_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=TIMEOUT_S)
    assert (result.returncode == 0) == expect_ok, result.stdout[-6000:]
    return result


def write_coco_layout(root):
    """``write_coco``'s two images as COCO's train2017/, val2017/ and annotations/."""
    write_coco(root, np.random.default_rng(0))
    (root / 'annotations').mkdir()
    for split in ('train2017', 'val2017'):
        shutil.copytree(root / 'images', root / split)
        shutil.copy(root / 'instances.json', root / 'annotations' / f'instances_{split}.json')
    shutil.rmtree(root / 'images')
    (root / 'instances.json').unlink()


def tiny_run(cfg, data_root):
    """For the tools: :func:`narrow_on_tiny_data` (train and test), no validation during
    training, logs every iteration."""
    cfg.update(val_dataloader=None, val_evaluator=None, val_cfg=None)
    cfg.default_hooks.logger.interval = 1
    narrow_on_tiny_data(cfg, data_root, ('train_dataloader', 'test_dataloader'))


def write_config(cfg, path):
    cfg.dump(path)
    return path


def tiny_mask_rcnn_config(tmp):
    """Mask R-CNN config on a 2-image COCO under ``tmp``: 2 epochs (1 iteration each with 2
    processes); written to ``tmp/tiny_mask_rcnn.py``, whose path is returned."""
    write_coco_layout(tmp / 'coco')
    cfg = Config.fromfile(CONFIG_DIR / 'mask_rcnn_convnext_t.py')
    tiny_run(cfg, tmp / 'coco')
    slim_rcnn(cfg.model)
    cfg.train_cfg.max_epochs = 2
    cfg.test_evaluator.ann_file = str(tmp / 'coco' / 'annotations' / 'instances_val2017.json')
    return write_config(cfg, tmp / 'tiny_mask_rcnn.py')


def resumable_mask_rcnn_config(tmp):
    """:func:`tiny_mask_rcnn_config` as a run to interrupt: its 2 images 4 times an epoch, 1 per
    batch, read by a dataloader worker; 2 epochs (4 iterations each on 2 processes), a checkpoint
    every 2 iterations: mid-epoch (``iter_2.pth``, ``iter_6.pth``) and at the end of each epoch
    (``iter_4.pth``, ``iter_8.pth``)."""
    cfg = Config.fromfile(tiny_mask_rcnn_config(tmp))
    loader = cfg.train_dataloader
    loader.dataset = dict(type='RepeatDataset', times=4, dataset=loader.dataset)
    loader.update(batch_size=1, num_workers=1)
    cfg.default_hooks.checkpoint.update(by_epoch=False, interval=2)
    return write_config(cfg, tmp / 'resumable_mask_rcnn.py')


def state_dicts_differ(path, reference):
    """The names of the weights that differ (not bit for bit equal) between the checkpoints at
    ``path`` and ``reference``."""
    weights, expected = (torch.load(file, map_location='cpu', weights_only=True)['state_dict']
                         for file in (path, reference))
    assert weights.keys() == expected.keys()
    return [name for name, tensor in weights.items() if not torch.equal(tensor, expected[name])]


def ade_config(tmp, max_iters, checkpoint_interval):
    """UperNet config on a 2 + 2 image ADE20K, ``max_iters`` iterations."""
    if not (tmp / 'ADEChallengeData2016').exists():
        write_ade(tmp / 'ADEChallengeData2016', np.random.default_rng(0))
    cfg = Config.fromfile(CONFIG_DIR / 'upernet_convnext_t.py')
    tiny_run(cfg, tmp / 'ADEChallengeData2016')
    slim_upernet(cfg, 32)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.default_hooks.checkpoint.interval = checkpoint_interval
    return write_config(cfg, tmp / f'tiny_upernet_{max_iters}.py')


#: A deprecation note in a tool's output: a warning (``...: UserWarning: ...``) or a logged note
#: (``... - WARNING - ...``), as the upstream packages print them
#: (``mmconvnext.utils.upstream_warnings`` filters the ones we know).
UPSTREAM_DEPRECATION = re.compile(r'(Warning: | - WARNING - ).*(deprecat|has been moved)',
                                  re.IGNORECASE)


def upstream_deprecations(output):
    """The lines of a tool's ``output`` that are upstream deprecation notes."""
    return [line for line in output.splitlines() if UPSTREAM_DEPRECATION.search(line)]


def saved_metrics(work_dir):
    """The metrics tools/test.py saved (mmengine's ``<timestamp>/<timestamp>.json``)."""
    (log_json, ) = [path for path in work_dir.glob('*/*.json') if path.stem == path.parent.name]
    return json.loads(log_json.read_text())


def train_scalars(work_dir):
    """The logged training records (``vis_data/scalars.json``) of each run in ``work_dir``."""
    return [[json.loads(line) for line in path.read_text().splitlines()]
            for path in sorted(work_dir.glob('*/vis_data/scalars.json'))]


def load_tool(relative_path):
    """The module of ``tools/<relative_path>``, imported from its file."""
    path = TOOLS_DIR / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomise(model, seed=0):
    """Every parameter random: weights of vectors 1 + 0.1 N(0, 1), other vectors (biases, layer
    scale, GRN) 0.1 N(0, 1), matrices and kernels 0.02 N(0, 1). Returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.squeeze().dim() == 1:
                param.normal_(1. if name.endswith('weight') else 0., 0.1, generator=generator)
            else:
                param.normal_(0., 0.02, generator=generator)
    model.eval()  # some train() overrides return None
    return model


def relative_error(out, ref):
    """||out - ref|| / ||ref||, in float64 on the CPU."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    return ((out - ref).norm() / ref.norm()).item()


@contextmanager
def one_thread():
    """torch on one thread inside: the tiny runs are many small ops, and one thread spares the
    OpenMP hand-offs (several times faster on shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

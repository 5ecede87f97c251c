"""The paper's dense-prediction configs (Tables 3 and 4) under configs/.

Every config loads and carries the published recipe; its model builds and measures the published
#params and FLOPs (T sizes here, the others with ``--run-slow``); the T configs train one iteration
and evaluate with the real COCO (pycocotools bbox + segm) and mIoU metrics on tiny datasets in the
COCO and ADEChallengeData2016 layouts written by the tests.
"""
import copy
from collections import namedtuple
from functools import lru_cache, partial

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner
from tiny_runs import CONFIG_DIR, NARROW_TINY_ARCH, divide_sizes, slim_rcnn, write_ade, write_coco

from mmconvnext.models.backbones.convnext import ARCH_SETTINGS

CHECKPOINT_HOST = 'https://dl.fbaipublicfiles.com/convnext/'

Target = namedtuple('Target', 'arch pretrain input_size params_m gflops drop_path lr decay_rate '
                              'num_layers amp')
# (W, H) of the published FLOPs; for ADE20K, H is also the training crop.
COCO_SIZE, ADE_512, ADE_640 = (1280, 800), (2048, 512), (2560, 640)
# Paper Table 3 and the authors' recipes (layer_wise decay).
COCO_TARGETS = {
    'mask_rcnn_convnext_t': Target('tiny', '1k', COCO_SIZE, 48, 262, 0.4, 1e-4, 0.95, 6, True),
    'cascade_convnext_t': Target('tiny', '1k', COCO_SIZE, 86, 741, 0.4, 2e-4, 0.7, 6, True),
    'cascade_convnext_s': Target('small', '1k', COCO_SIZE, 108, 827, 0.6, 2e-4, 0.7, 12, True),
    'cascade_convnext_b': Target('base', '1k', COCO_SIZE, 146, 964, 0.7, 2e-4, 0.8, 12, True),
    'cascade_convnext_b_22k': Target('base', '22k', COCO_SIZE, 146, 964, 0.6, 1e-4, 0.8, 12, True),
    'cascade_convnext_l_22k':
        Target('large', '22k', COCO_SIZE, 255, 1354, 0.7, 1e-4, 0.7, 12, False),
    'cascade_convnext_xl_22k':
        Target('xlarge', '22k', COCO_SIZE, 407, 1898, 0.8, 1e-4, 0.7, 12, False),
}
# Paper Table 4 and the authors' recipes (stage_wise decay).
ADE_TARGETS = {
    'upernet_convnext_t': Target('tiny', '1k', ADE_512, 60, 939, 0.4, 1e-4, 0.9, 6, True),
    'upernet_convnext_s': Target('small', '1k', ADE_512, 82, 1027, 0.3, 1e-4, 0.9, 12, True),
    'upernet_convnext_b': Target('base', '1k', ADE_512, 122, 1170, 0.4, 1e-4, 0.9, 12, True),
    'upernet_convnext_b_22k_640':
        Target('base', '22k', ADE_640, 122, 1828, 0.4, 1e-4, 0.9, 12, True),
    'upernet_convnext_l_22k_640':
        Target('large', '22k', ADE_640, 235, 2458, 0.4, 1e-4, 0.9, 12, False),
    'upernet_convnext_xl_22k_640':
        Target('xlarge', '22k', ADE_640, 391, 3335, 0.4, 8e-5, 0.9, 12, False),
}
TARGETS = {**COCO_TARGETS, **ADE_TARGETS}
PARAMS_RTOL, FLOPS_RTOL = 0.012, 0.02
# mmdet 2.x's forward_dummy, with which the papers counted detector FLOPs, runs the box heads on
# every RPN proposal and the mask heads on the first 100; mmdet 3.x's Mask R-CNN forward does the
# same, its CascadeRoIHead.forward runs the mask heads on every proposal too.
MASK_HEAD_ROIS = 100
# Proposals the RPN keeps while FLOPs are counted (RoI head FLOPs are scaled from them).
TRACED_PROPOSALS = 10


@lru_cache
def _parse_config(name):
    return Config.fromfile(CONFIG_DIR / f'{name}.py')


def load_config(name):
    return copy.deepcopy(_parse_config(name))


def load_recipe(name):
    """The config without the ``_scope_`` keys that mmengine adds to the dicts inherited from
    mmdet / mmseg bases, for comparisons."""
    return Config(without_scope(load_config(name).to_dict()))


def without_scope(value):
    if isinstance(value, dict):
        return {key: without_scope(item) for key, item in value.items() if key != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(without_scope(item) for item in value)
    return value


def default_suite_unless_heavy(names):
    """The T configs run by default; the others are marked slow."""
    return [name if TARGETS[name].arch == 'tiny' else pytest.param(name, marks=pytest.mark.slow)
            for name in names]


# --- recipes --------------------------------------------------------------------------------


@pytest.mark.parametrize('name', list(TARGETS))
def test_backbone_is_the_plugin_convnext_with_official_checkpoint_and_matching_necks(name):
    cfg, target = load_recipe(name), TARGETS[name]
    assert cfg.custom_imports == dict(imports=['mmconvnext'], allow_failed_imports=False)
    assert cfg.model.backbone == dict(
        type='mmconvnext.ConvNeXt', arch=target.arch, drop_path_rate=target.drop_path,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=f'{CHECKPOINT_HOST}convnext_{target.arch}_'
                                                    f'{target.pretrain}_224.pth'))
    channels = list(ARCH_SETTINGS[target.arch][1])
    if name in COCO_TARGETS:
        assert cfg.model.neck.in_channels == channels
    else:
        assert cfg.model.decode_head.in_channels == channels
        assert cfg.model.auxiliary_head.in_channels == channels[2]


@pytest.mark.parametrize('name', list(TARGETS))
def test_optimizer_is_adamw_with_layer_decay_and_published_values(name):
    cfg, target = load_recipe(name), TARGETS[name]
    optim = cfg.optim_wrapper
    assert optim.type == ('AmpOptimWrapper' if target.amp else 'OptimWrapper')
    assert optim.constructor == 'mmconvnext.LearningRateDecayOptimizerConstructor'
    assert optim.optimizer == dict(type='AdamW', lr=target.lr, betas=(0.9, 0.999),
                                   weight_decay=0.05)
    assert optim.paramwise_cfg == dict(
        decay_rate=target.decay_rate, num_layers=target.num_layers,
        decay_type='layer_wise' if name in COCO_TARGETS else 'stage_wise')
    assert optim.get('clip_grad') is None
    # 2 images per GPU; the lr is for 8 GPUs (mmengine scales it with --auto-scale-lr).
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)


@pytest.mark.parametrize('name', list(COCO_TARGETS))
def test_coco_3x_schedule_and_pipelines(name):
    cfg = load_recipe(name)
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=36, val_interval=1)
    assert cfg.param_scheduler == [
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
        dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1)]
    multi_scale = [(short_side, 1333) for short_side in range(480, 801, 32)]
    assert cfg.train_dataloader.dataset.pipeline[1:] == [
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomChoice', transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
            [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                  keep_ratio=True),
             dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                  allow_negative_crop=True),
             dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)]]),
        dict(type='PackDetInputs')]
    test_resize = cfg.test_dataloader.dataset.pipeline[1]
    assert test_resize == dict(type='Resize', scale=(1333, 800), keep_ratio=True)
    assert cfg.test_evaluator.metric == ['bbox', 'segm']


@pytest.mark.parametrize('name', [name for name in COCO_TARGETS if name.startswith('cascade')])
def test_cascade_heads_are_4conv1fc_giou_with_syncbn(name):
    model = load_recipe(name).model
    roi_head = model.roi_head
    assert roi_head.stage_loss_weights == [1, 0.5, 0.25]
    stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
    for stage_head, stage_stds in zip(roi_head.bbox_head, stds, strict=True):
        assert stage_head.type == 'ConvFCBBoxHead'
        assert (stage_head.num_shared_convs, stage_head.num_shared_fcs) == (4, 1)
        assert stage_head.norm_cfg == dict(type='SyncBN', requires_grad=True)
        assert stage_head.reg_decoded_bbox and not stage_head.reg_class_agnostic
        assert stage_head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
        assert stage_head.bbox_coder.target_stds == stage_stds
    assert [stage.assigner.pos_iou_thr for stage in model.train_cfg.rcnn] == [0.5, 0.6, 0.7]
    assert roi_head.mask_head.type == 'FCNMaskHead' and roi_head.mask_head.num_convs == 4


@pytest.mark.parametrize('name', list(ADE_TARGETS))
def test_ade20k_160k_schedule_pipelines_and_tests(name):
    cfg, target = load_recipe(name), ADE_TARGETS[name]
    scale = target.input_size
    crop = (scale[1], scale[1])
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
    assert cfg.param_scheduler == [
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
        dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=160000)]
    model = cfg.model
    assert model.decode_head.type == 'UPerHead' and model.decode_head.channels == 512
    assert model.decode_head.pool_scales == (1, 2, 3, 6)
    assert model.auxiliary_head.type == 'FCNHead' and model.auxiliary_head.in_index == 2
    assert model.auxiliary_head.loss_decode.loss_weight == 0.4
    for head in (model.decode_head, model.auxiliary_head):
        assert head.num_classes == 150
        assert head.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert model.data_preprocessor.size == crop
    stride = {512: 341, 640: 426}[crop[0]]
    assert model.test_cfg == dict(mode='slide', crop_size=crop, stride=(stride, stride))

    train = cfg.train_dataloader.dataset.pipeline
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert train[1] == dict(type='LoadAnnotations', reduce_zero_label=True)
    assert train[2] == dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0),
                            keep_ratio=True)
    assert train[3] == dict(type='RandomCrop', crop_size=crop, cat_max_ratio=0.75)
    assert [step.type for step in train[4:]] == ['RandomFlip', 'PhotoMetricDistortion',
                                                 'PackSegInputs']
    assert cfg.test_dataloader.dataset.pipeline[1] == dict(type='Resize', scale=scale,
                                                           keep_ratio=True)
    assert cfg.test_evaluator == dict(type='IoUMetric', iou_metrics=['mIoU'])

    assert cfg.tta_model == dict(type='SegTTAModel')
    resizes, flips, *_ = cfg.tta_pipeline[1].transforms
    ratios = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    assert [resize.scale for resize in resizes] == [
        (int(scale[0] * ratio), int(scale[1] * ratio)) for ratio in ratios]
    assert [flip.prob for flip in flips] == [0., 1.]


# --- #params and FLOPs ----------------------------------------------------------------------


def measure_complexity(cfg, input_size):
    """(#params, FLOPs) of the config's model in tensor mode on one ``input_size`` (W, H) image.

    The counter of ``mmengine.analysis.get_model_complexity_info`` (``FlopAnalyzer`` on the
    forward, ``parameter_count`` of the whole model; fvcore convention, one multiply-add = 1 FLOP)
    without its activation pass, on the model built without pretrained weights and with SyncBN
    reverted (as mmengine's Runner does outside distributed runs).

    Detectors get the metadata of an unpadded image bound to their forward, as in mmdet's
    ``tools/analysis_tools/get_flops.py``. Their box heads count for every RPN proposal
    (``test_cfg.rpn.max_per_img``, 1000) and their mask heads for ``MASK_HEAD_ROIS`` RoIs. To save
    CPU time the RPN keeps ``TRACED_PROPOSALS`` here and the RoI heads' FLOPs, linear in the
    number of RoIs, are scaled up.
    """
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    is_detector = 'roi_head' in cfg.model
    if is_detector:
        proposals = cfg.model.test_cfg.rpn.max_per_img
        cfg.model.test_cfg.rpn.max_per_img = TRACED_PROPOSALS
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    width, height = input_size
    image = torch.randn(1, 3, height, width)

    if is_detector:
        shape = (height, width)
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                             batch_input_shape=shape, scale_factor=(1., 1.)))
        model.forward = partial(model.forward, data_samples=[sample], mode='tensor')
        head_rois = {}  # head name -> RoIs its (first stage's) forward receives

        def record_rois(head_name, module, args):
            head_rois.setdefault(head_name, len(args[0]))

        for head_name in ('bbox_head', 'mask_head'):
            head = getattr(model.roi_head, head_name)
            first_stage = head[0] if isinstance(head, torch.nn.ModuleList) else head
            first_stage.register_forward_pre_hook(partial(record_rois, head_name))

    analyzer = FlopAnalyzer(model, (image, ))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        flops = analyzer.total()
    if is_detector:
        head_flops = analyzer.by_module()
        flops += head_flops['roi_head.bbox_head'] * (proposals / head_rois['bbox_head'] - 1)
        flops += head_flops['roi_head.mask_head'] * (MASK_HEAD_ROIS / head_rois['mask_head'] - 1)
    return parameter_count(model)[''], flops


def test_complexity_counter_reproduces_mmdet_reference():
    """mmdet's own Mask R-CNN ConvNeXt-T config gives 48.095M / 0.262T with this counter."""
    cfg = get_config('mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py')
    params, flops = measure_complexity(cfg, COCO_SIZE)
    assert round(params / 1e6, 3) == 48.095
    assert round(flops / 1e12, 3) == 0.262


@pytest.mark.parametrize('name', default_suite_unless_heavy(TARGETS))
def test_params_and_flops_match_paper(name):
    target = TARGETS[name]
    params, flops = measure_complexity(load_config(name), target.input_size)
    assert params / 1e6 == pytest.approx(target.params_m, rel=PARAMS_RTOL)
    assert flops / 1e9 == pytest.approx(target.gflops, rel=FLOPS_RTOL)


# --- one training iteration + evaluation on tiny datasets ------------------------------------

@pytest.fixture
def single_thread():
    """The tiny runs are many small ops: one thread spares the OpenMP hand-offs (several times
    faster on shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def prepare_tiny_run(cfg, tmp_path, data_root):
    """``cfg`` on CPU on the tiny dataset at ``data_root``: sizes / ``SIZE_DIVISOR``, a narrow
    ConvNeXt-T without pretrained weights, no checkpoints, data loaded in the main process."""
    cfg.work_dir = str(tmp_path / 'work_dir')
    cfg.model.backbone.update(arch=NARROW_TINY_ARCH, init_cfg=None)
    # mmengine 0.10's AmpOptimWrapper asserts a CUDA / NPU / MLU / MUSA device.
    if not torch.cuda.is_available():
        cfg.optim_wrapper.type = 'OptimWrapper'
    cfg.default_hooks.checkpoint = None
    cfg.randomness = dict(seed=0)
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[split]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.data_root = str(data_root)
        divide_sizes(loader.dataset.pipeline)


def run_and_collect_val_metrics(cfg):
    """Train with mmengine's Runner (validation at the end); the validation metrics."""
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    return {key[len('val/'):]: hub.get_scalar(key).current()
            for key in hub.log_scalars if key.startswith('val/')}


@pytest.mark.usefixtures('single_thread')
@pytest.mark.parametrize('name', ['mask_rcnn_convnext_t', 'cascade_convnext_t'])
def test_trains_and_evaluates_on_tiny_coco(name, tmp_path):
    data_root = tmp_path / 'coco'
    write_coco(data_root, np.random.default_rng(0))
    cfg = load_config(name)
    prepare_tiny_run(cfg, tmp_path, data_root)
    slim_rcnn(cfg.model)
    cfg.train_cfg.max_epochs = 1  # 2 images, 2 per batch: one iteration, then validation
    for split in ('train_dataloader', 'val_dataloader'):
        cfg[split].dataset.update(ann_file='instances.json', data_prefix=dict(img='images/'))
    cfg.val_evaluator.ann_file = str(data_root / 'instances.json')

    metrics = run_and_collect_val_metrics(cfg)

    for metric in ('bbox', 'segm'):
        assert 0 <= metrics[f'coco/{metric}_mAP'] <= 1


def tiny_upernet_run(tmp_path):
    """upernet_convnext_t on a tiny ADE20K: narrow backbone, 64 / 32-channel heads, sizes / 8."""
    data_root = tmp_path / 'ADEChallengeData2016'
    write_ade(data_root, np.random.default_rng(0))
    cfg = load_config('upernet_convnext_t')
    prepare_tiny_run(cfg, tmp_path, data_root)
    divide_sizes(cfg.tta_pipeline)
    model = cfg.model
    channels = NARROW_TINY_ARCH['channels']
    model.decode_head.update(in_channels=channels, channels=64)
    model.auxiliary_head.update(in_channels=channels[2], channels=32)
    divide_sizes([model.data_preprocessor, model.test_cfg])  # crop and sliding window
    return cfg


@pytest.mark.usefixtures('single_thread')
def test_trains_and_evaluates_on_tiny_ade20k(tmp_path):
    cfg = tiny_upernet_run(tmp_path)
    cfg.train_cfg.update(max_iters=1, val_interval=1)

    metrics = run_and_collect_val_metrics(cfg)

    assert 0 <= metrics['mIoU'] <= 100


@pytest.mark.usefixtures('single_thread')
def test_multi_scale_flip_test_on_tiny_ade20k(tmp_path):
    """What mmseg's ``tools/test.py --tta`` runs: the config's tta_pipeline and tta_model (whole
    image inference of each of the 12 views here; the test above covers sliding windows)."""
    cfg = tiny_upernet_run(tmp_path)
    cfg.model.test_cfg = dict(mode='whole')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model

    metrics = Runner.from_cfg(cfg).test()

    assert 0 <= metrics['mIoU'] <= 100

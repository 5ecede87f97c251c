"""The papers' dense-prediction configs under configs/: ConvNeXt (Tables 3 and 4) and ConvNeXt V2
(V2 paper Tables 6 and 7).

Every config loads and carries the published recipe; its model builds and measures the published
#params and FLOPs (T sizes here, the others with ``--run-slow``); the T configs and one V2 config
per task (narrow, at the depths of V2-B) train one iteration and evaluate with the real COCO
(pycocotools bbox + segm) and mIoU metrics on tiny datasets in the COCO and ADEChallengeData2016
layouts written by the tests.
"""
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from paper_targets import (ADE_TARGETS, COCO_SIZE, COCO_TARGETS, TARGETS, V2_ADE_TARGETS,
                           V2_COCO_TARGETS, V2_TARGETS)
from tiny_runs import (CONFIG_DIR, NARROW_TINY_ARCH, load_config, prepare_tiny_run, slim_rcnn,
                       tiny_upernet_run, write_coco)

from mmconvnext.analysis import measure_complexity
from mmconvnext.models.backbones.arch_settings import ARCH_SETTINGS
from mmconvnext.models.segmentors import SegTTAModelWithTestCfg
from mmconvnext.swap.base_config import without_scope

#: Where the authors publish their checkpoints (an independent literal, not the package's table).
CHECKPOINT_HOST = 'https://dl.fbaipublicfiles.com/convnext/'
PARAMS_RTOL, FLOPS_RTOL = 0.012, 0.02
ALL_TARGETS = {**TARGETS, **V2_TARGETS}
ALL_COCO = [*COCO_TARGETS, *V2_COCO_TARGETS]
ALL_ADE = [*ADE_TARGETS, *V2_ADE_TARGETS]
#: The V2 configs' narrow backbone in the tiny runs: V2-B's depths, so that their 12 decay groups
#: hold.
NARROW_V2_B_ARCH = dict(NARROW_TINY_ARCH, depths=[3, 3, 27, 3])


def load_recipe(name):
    """The config without the ``_scope_`` keys that mmengine adds to the dicts inherited from
    mmdet / mmseg bases, for comparisons."""
    return Config(without_scope(load_config(name).to_dict()))


def default_suite_unless_heavy(names):
    """The T configs run by default; the others are marked slow."""
    return [name if ALL_TARGETS[name].arch == 'tiny' else pytest.param(name, marks=pytest.mark.slow)
            for name in names]


def expected_backbone(name):
    """The backbone of a paper config: V1 with layer scale, V2 with GRN and no layer scale."""
    target = ALL_TARGETS[name]
    if name in V2_TARGETS:
        version = dict(layer_scale_init_value=0., use_grn=True)
        checkpoint = f'{CHECKPOINT_HOST}convnextv2/{target.checkpoint}'
    else:
        version = dict(layer_scale_init_value=1.0)
        checkpoint = f'{CHECKPOINT_HOST}convnext_{target.arch}_{target.pretrain}_224.pth'
    return dict(type='mmconvnext.ConvNeXt', arch=target.arch, drop_path_rate=target.drop_path,
                **version, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))


# --- recipes --------------------------------------------------------------------------------


@pytest.mark.parametrize('name', list(ALL_TARGETS))
def test_backbone_is_the_plugin_convnext_with_official_checkpoint_and_matching_necks(name):
    cfg, target = load_recipe(name), ALL_TARGETS[name]
    assert cfg.custom_imports == dict(imports=['mmconvnext'], allow_failed_imports=False)
    assert cfg.model.backbone == expected_backbone(name)
    channels = list(ARCH_SETTINGS[target.arch][1])
    if name in ALL_COCO:
        assert cfg.model.neck.in_channels == channels
    else:
        assert cfg.model.decode_head.in_channels == channels
        assert cfg.model.auxiliary_head.in_channels == channels[2]


@pytest.mark.parametrize('name', sorted(
    str(path.relative_to(CONFIG_DIR).with_suffix(''))
    for path in [*CONFIG_DIR.glob('*.py'), *CONFIG_DIR.glob('demo/*.py')]))
def test_every_config_counts_skipped_samples_and_stops_at_a_non_finite_step(name):
    """Paper and demo configs: both hooks from ``configs/_base_/``."""
    assert load_config(name).custom_hooks == [dict(type='mmconvnext.SkippedSamplesHook'),
                                              dict(type='mmconvnext.NonFiniteStepHook')]


@pytest.mark.parametrize('name', list(ALL_TARGETS))
def test_optimizer_is_adamw_with_layer_decay_and_published_values(name):
    cfg, target = load_recipe(name), ALL_TARGETS[name]
    optim = cfg.optim_wrapper
    assert optim.type == ('AmpOptimWrapper' if target.amp else 'OptimWrapper')
    assert optim.constructor == 'mmconvnext.LearningRateDecayOptimizerConstructor'
    assert optim.optimizer == dict(type='AdamW', lr=target.lr, betas=(0.9, 0.999),
                                   weight_decay=0.05)
    assert optim.paramwise_cfg == dict(
        decay_rate=target.decay_rate, num_layers=target.num_layers,
        decay_type='layer_wise' if name in ALL_COCO else 'stage_wise')
    assert optim.get('clip_grad') is None
    # 2 (V2 COCO: 4) images per GPU; the lr is for 8 GPUs (--auto-scale-lr rescales it).
    per_gpu = 4 if name in V2_COCO_TARGETS else 2
    assert cfg.train_dataloader.batch_size == per_gpu
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=8 * per_gpu)


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


@pytest.mark.parametrize('name', list(V2_COCO_TARGETS))
def test_v2_coco_3x_large_scale_jitter_and_soft_nms(name):
    """V2 paper appendix A.3: 3x, LSJ at 1024x1024 with scales 0.1..2.0, soft-NMS testing."""
    cfg = load_recipe(name)
    assert cfg.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=36, val_interval=1)
    assert cfg.param_scheduler == load_recipe('mask_rcnn_convnext_t').param_scheduler
    assert cfg.train_dataloader.dataset.pipeline[1:] == [
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='RandomResize', scale=(1024, 1024), ratio_range=(0.1, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_type='absolute_range', crop_size=(1024, 1024),
             recompute_bbox=True, allow_negative_crop=True),
        dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs')]
    assert cfg.test_dataloader.dataset.pipeline[1] == dict(type='Resize', scale=(1333, 800),
                                                           keep_ratio=True)
    assert cfg.model.type == 'MaskRCNN'
    assert cfg.model.test_cfg.rcnn.nms == dict(type='soft_nms', iou_threshold=0.5)
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


@pytest.mark.parametrize('name', ALL_ADE)
def test_ade20k_160k_schedule_pipelines_and_tests(name):
    cfg, target = load_recipe(name), ALL_TARGETS[name]
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
    assert cfg.train_dataloader.dataset.type == 'mmconvnext.CheckedADE20KDataset'
    assert train[1] == dict(type='LoadAnnotations', reduce_zero_label=True)
    assert train[2] == dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0),
                            keep_ratio=True)
    assert train[3] == dict(type='RandomCrop', crop_size=crop, cat_max_ratio=0.75)
    assert [step.type for step in train[4:]] == ['RandomFlip', 'PhotoMetricDistortion',
                                                 'PackSegInputs']
    assert cfg.test_dataloader.dataset.pipeline[1] == dict(type='Resize', scale=scale,
                                                           keep_ratio=True)
    assert cfg.test_evaluator == dict(type='IoUMetric', iou_metrics=['mIoU'])

    # --tta: each view through the whole network, as the official *_ms.py configs'
    # --aug-test (their single-scale *_ss.py slide, as above); the V2 paper names no mode
    assert cfg.tta_model == dict(type='mmconvnext.SegTTAModelWithTestCfg',
                                 test_cfg=dict(mode='whole'))
    resizes, flips, *_ = cfg.tta_pipeline[1].transforms
    if name in V2_ADE_TARGETS:  # V2 paper appendix A.4: five scales, no flip named
        ratios, flip_probs = (0.75, 0.875, 1.0, 1.125, 1.25), [0.]
    else:  # the V1 runs: six scales, each also flipped
        ratios, flip_probs = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75), [0., 1.]
    assert [resize.scale for resize in resizes] == [
        (int(scale[0] * ratio), int(scale[1] * ratio)) for ratio in ratios]
    assert [flip.prob for flip in flips] == flip_probs


# --- #params and FLOPs ----------------------------------------------------------------------


def test_complexity_counter_reproduces_mmdet_reference():
    """mmdet's own Mask R-CNN ConvNeXt-T config gives 48.095M / 0.262T with this counter."""
    cfg = get_config('mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py')
    params, flops = measure_complexity(cfg, COCO_SIZE)
    assert round(params / 1e6, 3) == 48.095
    assert round(flops / 1e12, 3) == 0.262


@pytest.mark.parametrize('name', default_suite_unless_heavy(ALL_TARGETS))
def test_params_and_flops_match_paper(name):
    target = ALL_TARGETS[name]
    params, flops = measure_complexity(load_config(name), target.input_size)
    if target.params_m is not None:
        assert params / 1e6 == pytest.approx(target.params_m, rel=PARAMS_RTOL)
    assert flops / 1e9 == pytest.approx(target.gflops, rel=FLOPS_RTOL)


# --- one training iteration + evaluation on tiny datasets ------------------------------------

def run_and_collect_val_metrics(cfg):
    """Train with mmengine's Runner (validation at the end); the validation metrics."""
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    return {key[len('val/'):]: hub.get_scalar(key).current()
            for key in hub.log_scalars if key.startswith('val/')}


@pytest.mark.usefixtures('single_thread')
@pytest.mark.parametrize('name', ['mask_rcnn_convnext_t', 'cascade_convnext_t',
                                  'mask_rcnn_convnextv2_b'])
def test_trains_and_evaluates_on_tiny_coco(name, tmp_path):
    data_root = tmp_path / 'coco'
    write_coco(data_root, np.random.default_rng(0))
    cfg = load_config(name)
    prepare_tiny_run(cfg, tmp_path, data_root)
    if name in V2_TARGETS:
        cfg.model.backbone.arch = NARROW_V2_B_ARCH
    slim_rcnn(cfg.model)
    cfg.train_cfg.max_epochs = 1  # 2 images, 2 per batch: one iteration, then validation
    for split in ('train_dataloader', 'val_dataloader'):
        cfg[split].dataset.update(ann_file='instances.json', data_prefix=dict(img='images/'))
    cfg.val_evaluator.ann_file = str(data_root / 'instances.json')

    metrics = run_and_collect_val_metrics(cfg)

    for metric in ('bbox', 'segm'):
        assert 0 <= metrics[f'coco/{metric}_mAP'] <= 1


def tiny_ade_run(name, tmp_path):
    cfg = tiny_upernet_run(tmp_path, name)
    if name in V2_TARGETS:
        cfg.model.backbone.arch = NARROW_V2_B_ARCH
    return cfg


@pytest.mark.usefixtures('single_thread')
@pytest.mark.parametrize('name', ['upernet_convnext_t', 'upernet_convnextv2_b'])
def test_trains_and_evaluates_on_tiny_ade20k(name, tmp_path):
    cfg = tiny_ade_run(name, tmp_path)
    cfg.train_cfg.update(max_iters=1, val_interval=1)

    metrics = run_and_collect_val_metrics(cfg)

    assert 0 <= metrics['mIoU'] <= 100


@pytest.mark.usefixtures('single_thread')
def test_multi_scale_flip_test_on_tiny_ade20k_infers_each_view_whole(tmp_path, monkeypatch):
    """What ``tools/test.py --tta`` runs: the config's tta_pipeline and tta_model. Each of the 12
    views (6 scales x 2 flips) is inferred on the whole resized image, never in sliding windows
    (the test above covers the single-scale windows; the V2 configs' 5 views differ only in their
    scales and flips, checked above)."""
    from mmseg.models.segmentors import EncoderDecoder
    cfg = tiny_upernet_run(tmp_path)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = dict(**cfg.tta_model, module=cfg.model)
    views = {'whole': [], 'slide': []}
    for mode in views:
        infer = getattr(EncoderDecoder, f'{mode}_inference')
        monkeypatch.setattr(EncoderDecoder, f'{mode}_inference',
                            lambda self, inputs, metas, infer=infer, mode=mode: views[mode].append(
                                tuple(inputs.shape[2:])) or infer(self, inputs, metas))

    metrics = Runner.from_cfg(cfg).test()

    assert 0 <= metrics['mIoU'] <= 100
    assert views['slide'] == []
    assert len(views['whole']) == 2 * 12  # write_ade's 2 validation images, of one size
    assert len(set(views['whole'])) == 6  # a flip keeps the size


class ModelWithoutTestCfg(BaseModel):
    def forward(self, inputs, data_samples=None, mode='tensor'):
        return inputs


def test_tta_model_needs_a_segmentor_with_a_test_cfg():
    with pytest.raises(TypeError, match='ModelWithoutTestCfg has no test_cfg to replace'):
        SegTTAModelWithTestCfg(module=ModelWithoutTestCfg(), test_cfg=dict(mode='whole'))


# --- DINOv3 ConvNeXt configs (our recipe: the V1 config of the size) --------------------------

DINOV3_CONFIGS = {  # config -> the V1 paper config it takes every setting from
    'cascade_convnext_t_dinov3': 'cascade_convnext_t',
    'cascade_convnext_s_dinov3': 'cascade_convnext_s',
    'cascade_convnext_b_dinov3': 'cascade_convnext_b',
    'cascade_convnext_l_dinov3': 'cascade_convnext_l_22k',
    'upernet_convnext_t_dinov3': 'upernet_convnext_t',
    'upernet_convnext_s_dinov3': 'upernet_convnext_s',
    'upernet_convnext_b_dinov3': 'upernet_convnext_b',
    'upernet_convnext_l_dinov3_640': 'upernet_convnext_l_22k_640',
}


def test_every_dinov3_config_is_listed():
    assert sorted(path.stem for path in CONFIG_DIR.glob('*dinov3*.py')) == sorted(DINOV3_CONFIGS)


@pytest.mark.parametrize('name', list(DINOV3_CONFIGS))
def test_dinov3_config_is_its_v1_config_with_the_dinov3_file_and_says_the_license(name):
    cfg, v1 = load_recipe(name).to_dict(), load_recipe(DINOV3_CONFIGS[name]).to_dict()
    arch = cfg['model']['backbone']['arch']
    checkpoint = (f'checkpoints/dinov3_convnext_{arch}_pretrain_lvd1689m-'
                  f'{DINOV3_HASHES[arch]}.pth')  # the DINOv3 repository's hub names
    assert cfg['model']['backbone'].pop('init_cfg') == dict(type='Pretrained',
                                                            checkpoint=checkpoint)
    v1['model']['backbone'].pop('init_cfg')
    assert cfg.pop('checkpoint_file') == checkpoint and v1.pop('checkpoint_file')
    assert cfg == v1
    text = ' '.join((CONFIG_DIR / f'{name}.py').read_text().split())
    assert 'DINOv3 License' in text and 'not MIT' in text


#: dinov3/hub/backbones.py: the hash suffix of each released ConvNeXt file
DINOV3_HASHES = dict(tiny='21b726bb', small='296db49d', base='801f2ba9', large='61fa432d')

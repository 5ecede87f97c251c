"""tools/analysis/benchmark_train.py: synthetic batches shaped by the recipes, the timm peer with
our learning-rate groups, the side-by-side run with its profile and JSON, and bad input."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from tiny_runs import (CONFIG_DIR, NARROW_TINY_ARCH, load_config, run_tool, slim_rcnn, slim_upernet,
                       write_config)

from mmconvnext.analysis.step_profile import PARTS
from mmconvnext.analysis.timm_convnext import TimmConvNeXt, swap_in_timm_convnext
from mmconvnext.analysis.training_step import (build_training, largest_train_shape,
                                               load_named_config, synthetic_batch,
                                               training_iteration)

MMDET_CASCADE_T = ('mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_'
                   'amp-ms-crop-3x_coco.py')
MMSEG_UPERNET_T = 'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'


@pytest.mark.parametrize('name, shape', [
    (str(CONFIG_DIR / 'cascade_convnext_t.py'), (800, 1333)),
    (MMDET_CASCADE_T, (800, 1333)),
    (str(CONFIG_DIR / 'upernet_convnext_t.py'), (512, 512)),
    (str(CONFIG_DIR / 'upernet_convnext_b_22k_640.py'), (640, 640)),
    (MMSEG_UPERNET_T, (512, 512)),
])
def test_the_batch_shape_is_the_recipes_largest_training_input(name, shape):
    assert largest_train_shape(load_named_config(name)) == shape


def test_synthetic_batches_are_shaped_like_coco_and_ade20k():
    det = synthetic_batch('detection', (96, 128), 2, 80, objects=7)
    assert [tuple(image.shape) for image in det['inputs']] == [(3, 96, 128)] * 2
    instances = det['data_samples'][0].gt_instances
    assert len(instances) == 7 and instances.masks.masks.shape == (7, 96, 128)
    assert instances.labels.max() < 80
    boxes = instances.bboxes
    assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes[:, 2].max() <= 128
    seg = synthetic_batch('segmentation', (256, 256), 1, 150)['data_samples'][0]
    labels = set(seg.gt_sem_seg.data.unique().tolist())
    assert 255 in labels and max(labels - {255}) < 150 and len(labels) > 10


def test_variant_options_are_merged_like_cfg_options():
    name = f'{CONFIG_DIR}/cascade_convnext_t.py@optim_wrapper.dtype=bfloat16'
    cfg = load_named_config(name + '@optim_wrapper.optimizer.fused=True')
    assert cfg.optim_wrapper.dtype == 'bfloat16' and cfg.optim_wrapper.optimizer.fused is True
    with pytest.raises(ValueError, match='expected @KEY=VALUE'):
        load_named_config(f'{CONFIG_DIR}/cascade_convnext_t.py@fused')


def test_timm_peer_has_our_contract_and_learning_rate_groups():
    cfg = load_config('mask_rcnn_convnext_t')
    ours_cfg = cfg.model.backbone
    timm_cfg = load_named_config(f'timm:{CONFIG_DIR}/mask_rcnn_convnext_t.py').model.backbone
    assert timm_cfg.type == 'mmconvnext.TimmConvNeXt' and timm_cfg.arch == 'tiny'
    assert timm_cfg.drop_path_rate == ours_cfg.drop_path_rate == 0.4
    assert timm_cfg.layer_scale_init_value == 1.0

    init_default_scope('mmdet')
    ours = MODELS.build(dict(ours_cfg, init_cfg=None))
    timm = TimmConvNeXt('tiny', drop_path_rate=0.4, layer_scale_init_value=1.0)
    x = torch.randn(1, 3, 64, 96)
    outs = [o.shape for o in ours(x)]
    assert [o.shape for o in timm(x)] == outs == [
        (1, c, 64 // s, 96 // s) for c, s in zip((96, 192, 384, 768), (4, 8, 16, 32))]

    def groups(backbone):
        wrapper = torch.nn.Module()
        wrapper.backbone = backbone
        optim = build_optim_wrapper(wrapper, cfg.optim_wrapper.to_dict() | dict(
            type='OptimWrapper'))
        return sorted((round(g['lr'], 12), g['weight_decay'], sum(p.numel() for p in g['params']))
                      for g in optim.optimizer.param_groups)

    # the same groups of the same sizes, but for the output norms (timm LayerNorm2d vs ours)
    assert groups(timm) == groups(ours)


def test_timm_peer_needs_a_convnext():
    cfg = load_config('mask_rcnn_convnext_t')
    cfg.model.backbone = dict(type='mmdet.ResNet', depth=50)
    with pytest.raises(ValueError, match="is a ConvNeXt; got type='mmdet.ResNet'"):
        swap_in_timm_convnext(cfg)
    with pytest.raises(ValueError, match="Unknown ConvNeXt arch 'gigantic'"):
        TimmConvNeXt('gigantic')


@pytest.fixture(scope='module')
def slim_configs(tmp_path_factory):
    """Slim Mask R-CNN and UperNet configs (narrow ConvNeXt-T, thin heads) as files."""
    tmp = tmp_path_factory.mktemp('benchmark_train')
    det = load_config('mask_rcnn_convnext_t')
    det.model.backbone.arch = NARROW_TINY_ARCH
    slim_rcnn(det.model, 16)
    seg = load_config('upernet_convnext_t')
    seg.model.backbone.arch = NARROW_TINY_ARCH
    slim_upernet(seg, 16)
    paths = dict(det=tmp / 'det.py', seg=tmp / 'seg.py')
    write_config(det, paths['det'])
    write_config(seg, paths['seg'])
    return paths


def test_side_by_side_run_reports_each_config_and_where_the_time_goes(slim_configs, tmp_path):
    report = tmp_path / 'train.json'
    out = run_tool('analysis/benchmark_train.py', slim_configs['det'],
                   f'timm:{slim_configs["det"]}', '--device', 'cpu', '--shape', 64, 96,
                   '--warmup', 1, '--iters', 2, '--profile', '--json', report).stdout
    assert 'detection, batch 2 x 3 x 64 x 96, 7 boxes + masks per image' in out
    assert 'LearningRateDecayOptimizerConstructor' not in out  # the groups table stays quiet
    assert 'USDT' not in out and 'ERROR:' not in out  # nor the profiler's own notes
    figures = json.loads(report.read_text())
    assert [c['name'] for c in figures['configs']] == [str(slim_configs['det']),
                                                       f'timm:{slim_configs["det"]}']
    for config in figures['configs']:
        assert config['precision'] == 'fp32' and len(config['seconds']) == 2
        assert config['s_per_iter'] > 0 and config['images_per_s'] == pytest.approx(
            2 / config['s_per_iter'])
        assert config['peak_bytes'] > 4 * 1024**2  # more than weights + AdamW state alone
        profile = config['profile']
        parts = profile['parts']
        assert {'backbone', 'neck', 'heads', 'losses', 'optimizer step'} <= set(parts)
        assert set(parts) <= {part for part, _, _ in PARTS} | {'backward (other)', 'other'}
        host = sum(t['host_s'] for t in parts.values())
        assert 0.5 * profile['wall_s'] < host <= 1.05 * profile['wall_s']
        # the backbone's backward is the backbone's, not left over to the backward range
        assert parts['backward (other)']['host_s'] < 0.2 * parts['backbone']['host_s']
        assert profile['kernels'] is None and profile['syncs'] is None
        assert f'| {config["name"]} | fp32 |' in out
    assert out.count('profile of ') == 2


def test_segmentation_run_and_bad_input_are_reported(slim_configs):
    """One run and three refusals, as four processes at once (each is mostly its imports)."""
    runs = [  # (arguments, whether it succeeds)
        ((slim_configs['seg'], '--device', 'cpu', '--shape', 64, 64, '--warmup', 0, '--iters', 1),
         True),
        ((slim_configs['det'], slim_configs['seg'], '--device', 'cpu'), False),
        (('configs/nope.py', '--device', 'cpu'), False),
        ((slim_configs['det'], '--shape', 16, 16), False),
    ]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        out, mixed, missing, small = pool.map(
            lambda run: run_tool('analysis/benchmark_train.py', *run[0], expect_ok=run[1]).stdout,
            runs)
    assert 'segmentation, batch 2 x 3 x 64 x 64;' in out
    assert f'| {slim_configs["seg"]} | fp32 |' in out
    assert "the configs mix detection and segmentation (['detection', 'segmentation'])" in mixed
    assert 'error: config file configs/nope.py does not exist' in missing
    assert '--shape 16 16: sides must be >= 32' in small


def test_training_iteration_updates_the_weights_and_logs_floats(slim_configs):
    cfg = load_named_config(str(slim_configs['seg']))
    training = build_training(cfg, 'cpu')
    batch = synthetic_batch('segmentation', (64, 64), 2, 150)  # BN in the pooling: batch 2
    before = training.model.backbone.stages[0][0].pwconv1.weight.detach().clone()
    log_vars = training_iteration(training, batch)
    assert {'loss', 'decode.loss_ce', 'aux.loss_ce'} <= set(log_vars)
    assert all(isinstance(value, float) for value in log_vars.values())
    assert not torch.equal(before, training.model.backbone.stages[0][0].pwconv1.weight)
    assert type(training.optim_wrapper).__name__ == 'OptimWrapper'  # AMP falls back on CPU


@pytest.mark.cuda
@pytest.mark.usefixtures('mmcv_cuda_ops')
def test_cuda_run_profiles_kernels_and_synchronisations_and_runs_the_variants(slim_configs,
                                                                              tmp_path):
    report = tmp_path / 'train.json'
    det = str(slim_configs['det'])
    variant = f'{det}@optim_wrapper.dtype=bfloat16@optim_wrapper.optimizer.fused=True'
    run_tool('analysis/benchmark_train.py', det, variant, '--device', 'cuda', '--shape', 128, 192,
             '--warmup', 1, '--iters', 2, '--profile', '--json', report)
    configs = json.loads(report.read_text())['configs']
    assert [c['precision'] for c in configs] == ['fp16 AMP', 'bf16 AMP']
    for config in configs:
        profile = config['profile']
        assert profile['kernels'] > 100
        assert 0 < profile['device_busy_s'] <= profile['wall_s']
        # at least one per logged value (mmengine's RuntimeInfoHook takes each as a float)
        assert profile['syncs'] >= 5
        assert sum(t['device_s'] for t in profile['parts'].values()) > 0.5 * profile[
            'device_busy_s']
        assert profile['parts']['backbone']['device_s'] > 0

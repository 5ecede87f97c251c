"""Layer-wise / stage-wise LR decay (LearningRateDecayOptimizerConstructor) and LrRangeHook.

Every parameter's lr and weight decay is checked against :func:`reference_settings`, the recipe
written here from parameter names, on real mmdet (RetinaNet) and mmseg (UPerNet) models built
under their default scope, and against mmdet's / mmseg's own constructors.
"""
import logging
import re
from importlib import import_module
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.hooks import RuntimeInfoHook
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
from mmengine.runner import Runner
from torch.utils.data import DataLoader, TensorDataset

from mmconvnext.engine.hooks import LrRangeHook
from mmconvnext.models import ConvNeXt
from mmconvnext.models.backbones.arch_settings import ARCH_SETTINGS

BASE_LR, BASE_WD = 1e-4, 0.05
CONSTRUCTOR = 'mmconvnext.LearningRateDecayOptimizerConstructor'
#: the recipe's N, as written in the official configs (not computed)
NUM_LAYERS = {'tiny': 6, 'base': 12}
DECAY_RATE = {'layer_wise': 0.7, 'stage_wise': 0.9}
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
#: a small arch: depths[2] = 3, so N = 4
SMALL_ARCH = dict(depths=(1, 1, 3, 1), channels=(8, 8, 8, 8))


# ------------------------------------------------------------------ the recipe, independently
def reference_layer_id(name, decay_type, num_layers):
    """Layer id of parameter ``name`` (a full name from the model root), from the name alone."""
    parts = name.split('.')
    if name.startswith('backbone.downsample_layers.'):
        return 0 if decay_type == 'stage_wise' else [0, 2, 3, num_layers][int(parts[2])]
    if name.startswith('backbone.stages.'):
        stage, block = int(parts[2]), int(parts[3])
        if decay_type == 'stage_wise':
            return stage + 1
        return [1, 2, 3 + block // 3, num_layers][stage]
    return num_layers + 1


def reference_settings(model, decay_type, decay_rate, num_layers, custom_keys=None,
                       norm_decay_mult=None, bias_decay_mult=None):
    """{name: (lr, weight decay)} of every trainable parameter under the documented rules."""
    custom_keys = custom_keys or {}
    expected = {}
    for module_name, module in model.named_modules():
        for local_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            name = f'{module_name}.{local_name}'
            layer_id = reference_layer_id(name, decay_type, num_layers)
            lr = BASE_LR * decay_rate**(num_layers + 1 - layer_id)
            wd = 0. if param.dim() == 1 or local_name == 'bias' else BASE_WD
            matches = sorted((k for k in custom_keys if k in name), key=lambda k: (-len(k), k))
            if matches:
                options = custom_keys[matches[0]]
                lr *= options.get('lr_mult', 1.)
                wd = BASE_WD * options['decay_mult'] if 'decay_mult' in options else wd
            elif norm_decay_mult is not None and isinstance(module, NORM_TYPES):
                wd = BASE_WD * norm_decay_mult
            elif bias_decay_mult is not None and local_name == 'bias':
                wd = BASE_WD * bias_decay_mult
            expected[name] = (lr, wd)
    return expected


def built_settings(model, optim_wrapper):
    """{name: (lr, weight decay)} from the optimizer; each trainable parameter exactly once."""
    by_id = {}
    for group in optim_wrapper.optimizer.param_groups:
        for param in group['params']:
            assert id(param) not in by_id, 'a parameter is in two groups'
            by_id[id(param)] = (group['lr'], group['weight_decay'])
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert set(by_id) == {id(p) for p in named.values()}
    return {n: by_id[id(p)] for n, p in named.items()}


def assert_same_settings(actual, expected):
    assert actual.keys() == expected.keys()
    wrong = {n: (actual[n], expected[n]) for n in expected
             if actual[n] != pytest.approx(expected[n], rel=1e-12, abs=0)}
    assert not wrong, f'{len(wrong)} parameters differ, e.g. {list(wrong.items())[:3]}'


# ------------------------------------------------------------------------------------- models
def det_cfg(arch):
    channels = list(ARCH_SETTINGS[arch][1])
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
        backbone=dict(type='mmconvnext.ConvNeXt', arch=arch, out_indices=(0, 1, 2, 3)),
        neck=dict(type='FPN', in_channels=channels, out_channels=16, start_level=1,
                  add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='RetinaHead', num_classes=3, in_channels=16, stacked_convs=1, feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                            target_stds=[1., 1., 1., 1.]),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)))


def seg_cfg(arch):
    channels = list(ARCH_SETTINGS[arch][1])
    bn = dict(type='BN', requires_grad=True)
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=255),
        backbone=dict(type='mmconvnext.ConvNeXt', arch=arch, out_indices=(0, 1, 2, 3)),
        decode_head=dict(type='UPerHead', in_channels=channels, in_index=[0, 1, 2, 3],
                         pool_scales=(1, 2), channels=16, num_classes=3, norm_cfg=bn,
                         align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        auxiliary_head=dict(type='FCNHead', in_channels=channels[2], in_index=2, channels=16,
                            num_convs=1, concat_input=False, num_classes=3, norm_cfg=bn,
                            align_corners=False,
                            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


_MODELS = {}


def downstream_model(scope, arch):
    """A RetinaNet (mmdet) or UPerNet (mmseg) with a ConvNeXt ``arch`` backbone, built once."""
    if (scope, arch) not in _MODELS:
        cfg = det_cfg(arch) if scope == 'mmdet' else seg_cfg(arch)
        with DefaultScope.overwrite_default_scope(scope):
            _MODELS[scope, arch] = import_module(f'{scope}.registry').MODELS.build(cfg)
    return _MODELS[scope, arch]


@pytest.fixture(scope='module', autouse=True)
def _free_models():
    yield
    _MODELS.clear()


class SmallModel(BaseModel):
    """A SMALL_ARCH ConvNeXt and a linear classifier; ``forward(inputs (N, 3, H, W), labels)``."""

    def __init__(self, **backbone_kwargs):
        super().__init__()
        self.backbone = ConvNeXt(arch=SMALL_ARCH, out_indices=(3, ), **backbone_kwargs)
        self.head = nn.Linear(8, 2)

    def forward(self, inputs, labels=None, mode='tensor'):
        logits = self.head(self.backbone(inputs)[0].mean((2, 3)))
        return dict(loss=F.cross_entropy(logits, labels)) if mode == 'loss' else logits


def build(model, scope=None, wrapper='OptimWrapper', constructor=CONSTRUCTOR, **paramwise_cfg):
    cfg = dict(type=wrapper, optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD),
               constructor=constructor, paramwise_cfg=paramwise_cfg)
    with DefaultScope.overwrite_default_scope(scope):
        return build_optim_wrapper(model, cfg)


# ------------------------------------------------------------------------------ the recipe
@pytest.mark.parametrize('give_num_layers', [True, False], ids=['num_layers', 'inferred'])
@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
@pytest.mark.parametrize('arch', ['tiny', 'base'])
@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_every_parameter_follows_the_recipe(scope, arch, decay_type, give_num_layers):
    model = downstream_model(scope, arch)
    num_layers = NUM_LAYERS[arch]
    extra = dict(num_layers=num_layers) if give_num_layers else {}
    optim_wrapper = build(model, scope, decay_rate=DECAY_RATE[decay_type],
                          decay_type=decay_type, **extra)
    assert type(optim_wrapper) is OptimWrapper
    assert_same_settings(built_settings(model, optim_wrapper),
                         reference_settings(model, decay_type, DECAY_RATE[decay_type], num_layers))
    lrs = [group['lr'] for group in optim_wrapper.optimizer.param_groups]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] == BASE_LR  # largest lr first


@pytest.mark.parametrize('decay_type', ['layer_wise', 'stage_wise'])
@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_same_settings_as_the_downstream_constructor(scope, decay_type):
    model = downstream_model(scope, 'tiny')
    paramwise = dict(decay_rate=DECAY_RATE[decay_type], decay_type=decay_type, num_layers=6)
    ours = build(model, scope, **paramwise)
    theirs = build(model, scope, constructor='LearningRateDecayOptimizerConstructor', **paramwise)
    assert_same_settings(built_settings(model, ours), built_settings(model, theirs))
    assert ours.optimizer.param_groups[0]['lr'] != theirs.optimizer.param_groups[0]['lr']


#: the appendix example, tiny layer_wise 0.7: (name prefix, exponent of 0.7)
TINY_LAYER_WISE_EXPONENTS = [
    ('backbone.downsample_layers.0.', 7), ('backbone.stages.0.', 6),
    ('backbone.downsample_layers.1.', 5), ('backbone.stages.1.', 5),
    ('backbone.downsample_layers.2.', 4), *[(f'backbone.stages.2.{j}.', 4) for j in (0, 1, 2)],
    *[(f'backbone.stages.2.{j}.', 3) for j in (3, 4, 5)],
    *[(f'backbone.stages.2.{j}.', 2) for j in (6, 7, 8)],
    ('backbone.downsample_layers.3.', 1), ('backbone.stages.3.', 1),
    ('backbone.norm', 0), ('neck.', 0), ('bbox_head.', 0)]
#: tiny stage_wise 0.9 (N = 6): downsampling 0.9^7, stage i 0.9^(6 - i), the rest 1
TINY_STAGE_WISE_EXPONENTS = [
    ('backbone.downsample_layers.', 7), *[(f'backbone.stages.{i}.', 6 - i) for i in range(4)],
    ('backbone.norm', 0), ('neck.', 0), ('bbox_head.', 0)]


@pytest.mark.parametrize('decay_type, table', [('layer_wise', TINY_LAYER_WISE_EXPONENTS),
                                               ('stage_wise', TINY_STAGE_WISE_EXPONENTS)])
def test_tiny_example_table(decay_type, table):
    model = downstream_model('mmdet', 'tiny')
    rate = DECAY_RATE[decay_type]
    settings = built_settings(model, build(model, 'mmdet', decay_rate=rate,
                                           decay_type=decay_type))
    hits = dict.fromkeys(prefix for prefix, _ in table)
    for name, param in model.named_parameters():
        (prefix, exponent), = [(p, e) for p, e in table if name.startswith(p)]
        hits[prefix] = True
        expected = (BASE_LR * rate**exponent, 0. if param.dim() == 1 else BASE_WD)
        assert settings[name] == pytest.approx(expected, rel=1e-12), name
    assert all(hits.values()), [p for p, hit in hits.items() if not hit]


def test_custom_keys_and_decay_mults_on_top_of_the_decay():
    model = downstream_model('mmseg', 'tiny')
    options = dict(
        custom_keys={'decode_head': dict(lr_mult=10.), 'backbone.stages.3': dict(decay_mult=0.5),
                     'auxiliary_head.conv_seg': dict(lr_mult=2., decay_mult=0.)},
        norm_decay_mult=0.5, bias_decay_mult=0.2)
    optim_wrapper = build(model, 'mmseg', decay_rate=0.9, decay_type='stage_wise', **options)
    settings = built_settings(model, optim_wrapper)
    assert_same_settings(settings, reference_settings(model, 'stage_wise', 0.9, 6, **options))
    # a few by hand: (lr, weight decay)
    assert settings['decode_head.conv_seg.weight'] == pytest.approx((10 * BASE_LR, BASE_WD))
    assert settings['decode_head.bottleneck.bn.weight'] == pytest.approx((10 * BASE_LR, 0.))
    assert settings['auxiliary_head.conv_seg.weight'] == pytest.approx((2 * BASE_LR, 0.))
    assert settings['backbone.stages.3.0.gamma'] == pytest.approx((BASE_LR * .9**3, BASE_WD / 2))
    assert settings['backbone.stages.0.0.norm.bias'] == pytest.approx((BASE_LR * .9**6, .025))
    assert settings['backbone.stages.0.0.pwconv1.bias'] == pytest.approx((BASE_LR * .9**6, .01))
    assert settings['backbone.stages.0.0.gamma'] == pytest.approx((BASE_LR * .9**6, 0.))
    assert settings['backbone.norm0.weight'] == pytest.approx((BASE_LR, .025))


def test_mmpretrain_convnext_backbone():
    """The mmdet / mmseg ConvNeXt configs use mmpretrain's ConvNeXt: same names, same recipe."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        from mmseg.registry import MODELS
        model = MODELS.build(dict(seg_cfg('atto'), backbone=dict(
            type='mmpretrain.ConvNeXt', arch='atto', out_indices=(0, 1, 2, 3),
            gap_before_final_norm=False)))
    assert type(model.backbone).__module__.startswith('mmpretrain.')
    settings = built_settings(model, build(model, 'mmseg', decay_rate=0.8))  # N = 3 + 6 / 3
    assert_same_settings(settings, reference_settings(model, 'layer_wise', 0.8, 5))


def test_frozen_parameters_are_left_out():
    model = SmallModel(frozen_stages=1)
    settings = built_settings(model, build(model, decay_rate=0.5))  # checks trainable == grouped
    assert not any(n.startswith(('backbone.downsample_layers.0.', 'backbone.stages.0.'))
                   for n in settings)
    assert_same_settings(settings, reference_settings(model, 'layer_wise', 0.5, 4))


def test_ddp_wrapped_model(tmp_path):
    from mmengine.model import MMDistributedDataParallel
    model = SmallModel()
    torch.distributed.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                                         world_size=1)
    try:
        optim_wrapper = build(MMDistributedDataParallel(module=model), decay_rate=0.5,
                              decay_type='stage_wise')
    finally:
        torch.distributed.destroy_process_group()
    assert_same_settings(built_settings(model, optim_wrapper),
                         reference_settings(model, 'stage_wise', 0.5, 4))


def test_build_logs_one_table():
    logger = MMLogger.get_instance('test_layer_decay_table')  # becomes the current logger
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        optim_wrapper = build(SmallModel(), decay_rate=0.5)
    finally:
        logger.removeHandler(handler)
    table, = [r.getMessage() for r in records if r.levelno == logging.INFO
              and r.getMessage().startswith('LearningRateDecayOptimizerConstructor:')]
    lines = table.splitlines()
    assert lines[1].split() == ['group', 'layer', 'id', 'lr', 'scale', 'weight', 'decay',
                                '#params']
    groups = optim_wrapper.optimizer.param_groups
    assert len(lines) == 2 + len(groups)
    for line, group in zip(lines[2:], groups, strict=True):
        name, layer_id, scale, wd, numel = line.split()
        assert name == f'layer_{layer_id}_{"decay" if group["weight_decay"] else "no_decay"}'
        assert float(scale) == pytest.approx(0.5**(5 - int(layer_id)), rel=1e-5)
        assert float(scale) == pytest.approx(group['lr'] / BASE_LR, rel=1e-5)
        assert float(wd) == group['weight_decay']
        assert int(numel.replace(',', '')) == sum(p.numel() for p in group['params'])


# ------------------------------------------------------------------------------ bad settings
@pytest.mark.parametrize('arch, num_layers, right', [('tiny', 7, 6), ('tiny', 12, 6),
                                                     ('base', 6, 12)])
def test_wrong_num_layers_raises(arch, num_layers, right):
    model = downstream_model('mmdet', arch)
    for decay_type in ('layer_wise', 'stage_wise'):
        with pytest.raises(ValueError, match=f'num_layers={num_layers} .*num_layers={right}'):
            build(model, 'mmdet', decay_rate=0.9, decay_type=decay_type, num_layers=num_layers)


@pytest.mark.parametrize('paramwise, message', [
    (dict(decay_rate=0.9, decay_type='block_wise'), "decay_type='block_wise'.*'layer_wise'"),
    (dict(decay_rate=0.9, decay_type='layer_wise_vit'), "'layer_wise_vit'.*'stage_wise'"),
    (dict(decay_type='layer_wise'), 'decay_rate=None'),
    (dict(decay_rate=1.5), 'decay_rate=1.5'),
    (dict(decay_rate=0.9, bias_lr_mult=2.), r"\['bias_lr_mult'\]"),
    (dict(decay_rate=0.9, custom_keys={'head': dict(momentum=0.5)}), "custom_keys\\['head'\\]"),
])
def test_bad_paramwise_cfg_raises(paramwise, message):
    with pytest.raises(ValueError, match=message):
        build(SmallModel(), **paramwise)


def test_optimizer_without_weight_decay_raises():
    cfg = dict(optimizer=dict(type='SGD', lr=0.1), constructor=CONSTRUCTOR,
               paramwise_cfg=dict(decay_rate=0.9))
    with pytest.raises(ValueError, match='weight_decay'):
        build_optim_wrapper(SmallModel(), cfg)


def test_model_without_convnext_backbone_raises():
    with pytest.raises(TypeError, match='ConvNeXt-style backbone.*Linear.backbone is NoneType'):
        build(nn.Linear(2, 2), decay_rate=0.9)
    with DefaultScope.overwrite_default_scope('mmdet'):
        from mmdet.registry import MODELS
        resnet = MODELS.build(dict(type='ResNet', depth=18))
    holder = nn.Module()
    holder.backbone = resnet
    with pytest.raises(TypeError, match='backbone is ResNet'):
        build(holder, decay_rate=0.9)


# ------------------------------------------------------------------- wrappers and schedulers
def test_amp_optim_wrapper(monkeypatch):
    """mmengine 0.10.7's AmpOptimWrapper asserts a GPU. Without one, that check is patched, the
    GradScaler disables itself and autocast runs in bfloat16 on the CPU: the groups, autocast and
    a step are tested, loss scaling only on a GPU."""
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        from mmengine.optim.optimizer import amp_optimizer_wrapper
        monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    device = 'cuda' if on_gpu else 'cpu'
    model = SmallModel().to(device)
    amp = build_optim_wrapper(model, dict(
        type='AmpOptimWrapper', dtype=None if on_gpu else 'bfloat16',
        optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD),
        constructor=CONSTRUCTOR, paramwise_cfg=dict(decay_rate=0.5)))
    assert type(amp) is AmpOptimWrapper and amp.loss_scaler.is_enabled() == on_gpu
    assert_same_settings(built_settings(model, amp), reference_settings(model, 'layer_wise', .5, 4))
    head = model.head.weight.detach().clone()
    with amp.optim_context(model):
        logits = model(torch.randn(2, 3, 32, 32, device=device))
    assert logits.dtype == (torch.float16 if on_gpu else torch.bfloat16)
    amp.update_params(F.cross_entropy(logits.float(), torch.tensor([0, 1], device=device)))
    assert not torch.equal(head, model.head.weight)
    assert len(amp.optimizer.state) == sum(1 for _ in model.parameters())  # every group stepped


SCHEDULES = {
    'LinearLR+PolyLR': [
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=3),
        dict(type='PolyLR', power=1.0, eta_min=0., by_epoch=False, begin=3, end=10)],
    'LinearLR+MultiStepLR': [
        dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=3),
        dict(type='MultiStepLR', milestones=[4, 6], gamma=0.1, by_epoch=False)],
}


@pytest.mark.parametrize('schedule', list(SCHEDULES))
def test_schedulers_keep_the_ratios(schedule):
    model = SmallModel()
    optim_wrapper = build(model, decay_rate=0.5)
    groups = optim_wrapper.optimizer.param_groups
    initial = [g['lr'] for g in groups]
    schedulers = [PARAM_SCHEDULERS.build(dict(cfg, optimizer=optim_wrapper))
                  for cfg in SCHEDULES[schedule]]
    factors = []
    for _ in range(9):
        factor = groups[0]['lr'] / initial[0]
        assert [g['lr'] for g in groups] == pytest.approx(
            [lr * factor for lr in initial], rel=1e-9)
        factors.append(factor)
        optim_wrapper.step()
        for scheduler in schedulers:
            scheduler.step()
    assert min(factors) < 0.01 and max(factors) == pytest.approx(1.)  # the lrs did change


# --------------------------------------------------------------------------------- the hook
def run_hooks(optim_wrapper, name):
    runner = SimpleNamespace(iter=0, optim_wrapper=optim_wrapper,
                             message_hub=MessageHub.get_instance(name))
    RuntimeInfoHook().before_train_iter(runner, 0)
    LrRangeHook().before_train_iter(runner, 0)
    return runner.message_hub


def test_hook_with_layer_decay_groups():
    optim_wrapper = build(downstream_model('mmdet', 'tiny'), 'mmdet', decay_rate=0.7)
    hub = run_hooks(optim_wrapper, 'test_layer_decay_hook_ours')
    assert hub.get_scalar('train/lr').current() == BASE_LR
    assert hub.get_scalar('train/layer_0_lr').current() == pytest.approx(BASE_LR * 0.7**7)
    assert len(hub.get_scalar('train/lr').data[0]) == 1  # RuntimeInfoHook's value is the largest


def test_hook_with_other_group_orders():
    small, large = nn.Linear(2, 2), nn.Linear(2, 2)
    optimizer = torch.optim.SGD([dict(params=small.parameters(), lr=0.01),
                                 dict(params=large.parameters(), lr=0.1)], lr=0.05)
    hub = run_hooks(OptimWrapper(optimizer), 'test_layer_decay_hook_other')
    assert hub.get_scalar('train/lr').current() == 0.1
    assert hub.get_scalar('train/layer_0_lr').current() == 0.01
    assert hub.get_scalar('train/base_lr').current() == 0.05  # RuntimeInfoHook's, untouched
    both = OptimWrapperDict(gen=OptimWrapper(optimizer),
                            disc=OptimWrapper(torch.optim.SGD(small.parameters(), lr=0.3)))
    hub = run_hooks(both, 'test_layer_decay_hook_dict')
    assert hub.get_scalar('train/gen.lr').current() == 0.1
    assert hub.get_scalar('train/gen.layer_0_lr').current() == 0.01
    assert hub.get_scalar('train/disc.lr').current() == 0.3
    assert hub.get_scalar('train/disc.layer_0_lr').current() == 0.3


def test_hook_in_a_training_run(tmp_path):
    data = TensorDataset(torch.randn(6, 3, 32, 32), torch.tensor([0, 1] * 3))
    runner = Runner(
        model=SmallModel(), work_dir=str(tmp_path), experiment_name='test_layer_decay_runner',
        train_dataloader=DataLoader(data, batch_size=2),
        train_cfg=dict(by_epoch=False, max_iters=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
                           constructor=CONSTRUCTOR, paramwise_cfg=dict(decay_rate=0.5)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1), checkpoint=None),
        custom_hooks=[dict(type='mmconvnext.LrRangeHook')],
        log_processor=dict(by_epoch=False))
    runner.train()
    assert runner.message_hub.get_scalar('train/lr').current() == pytest.approx(0.1)
    assert runner.message_hub.get_scalar('train/layer_0_lr').current() == pytest.approx(0.1 / 32)
    log, = tmp_path.glob('*/*.log')
    logged = re.findall(r'Iter\(train\) \[(\d)/3\].* lr: (\S+)\s+layer_0_lr: (\S+)',
                        log.read_text())
    # LinearLR from 0.5 to 1 over 3 iterations; N = 4, so the stem has 0.5 ** 5 of the head's lr
    assert [i for i, _, _ in logged] == ['1', '2', '3']
    assert [float(v) for _, lr, low in logged for v in (lr, low)] == pytest.approx(
        [0.05, 0.05 / 32, 0.075, 0.075 / 32, 0.1, 0.1 / 32], rel=1e-3)

"""tools/swap_backbone.py and :mod:`mmconvnext.swap`.

ConvNeXt-atto (random init, so nothing is downloaded) replaces the ResNet of mmdet's / mmseg's
own configs of seven families (two-stage, one-stage caffe-normalised and query-based detectors;
FPN-neck, decode-head, dilated D8 and D16 segmentors); each written config loads with the
ImageNet RGB input normalisation, and its model trains one iteration on a tiny dataset in the
real COCO / ADE20K / Cityscapes layout (heads slimmed after loading) with a finite gradient at
the stem. Bases that cannot take a ConvNeXt pyramid (SSD, ViT, a C4 RoI head, normalisation in
the pipeline, no backbone, another scope) and bad input are refused with nothing written. The
#params / FLOPs print is checked once, on a small test size. ``--v2`` swaps in ConvNeXt V2 with
the V2 paper's recipe and checkpoints. The recipe tables match the paper configs (V1 and V2).
"""
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from tiny_runs import (CONFIG_DIR, divide_sizes, load_config, slim_rcnn, tiny_images, write_ade,
                       write_coco)

from mmconvnext.engine.runner_setup import fit_optim_wrapper_to_device
from mmconvnext.models.backbones.official_checkpoints import (dinov3_checkpoint_path,
                                                              official_checkpoint_url)
from mmconvnext.swap import BackboneSwapError, plan_backbone_swap, write_swapped_config
from mmconvnext.swap.base_config import base_reference, without_scope
from mmconvnext.swap.normalisation import normalisation_overrides
from mmconvnext.swap.probe import convnext_placement
from mmconvnext.swap.recipe import PAPER_RECIPES, V2_PAPER_RECIPES, Recipe, paper_recipe
from mmconvnext.swap.rewire import backbone_consumers, rewire_consumer, sparse_overrides

TOOL = Path(__file__).resolve().parents[1] / 'tools' / 'swap_backbone.py'
ATTO_CHANNELS = [40, 80, 160, 320]
IMAGENET_RGB = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                    bgr_to_rgb=True)


def slim_mask_rcnn(model):
    slim_rcnn(model)  # also sets the neck for its narrow arch: put the swapped channels back
    model.neck.in_channels = ATTO_CHANNELS


def slim_fcos(model):
    model.neck.out_channels = 64
    model.bbox_head.update(in_channels=64, feat_channels=64, stacked_convs=1)


def slim_deformable_detr(model):
    model.encoder.num_layers = model.decoder.num_layers = 1
    model.num_queries = 30


def slim_sem_fpn(model):
    model.neck.out_channels = 32
    model.decode_head.update(in_channels=[32] * 4, channels=32)


def slim_upernet(model):
    model.decode_head.channels = 64
    model.auxiliary_head.channels = 32


def slim_deeplab(model):
    model.decode_head.channels = 32
    if 'c1_channels' in model.decode_head:
        model.decode_head.c1_channels = 16
    model.auxiliary_head.channels = 16


def write_cityscapes(root, rng):
    """Cityscapes layout, two training images; train-id labels 0..18 and 255 (ignored)."""
    images, boxes = tiny_images(rng, 2)
    for folder in ('leftImg8bit/train/city', 'gtFine/train/city'):
        (root / folder).mkdir(parents=True)
    for index, (image, (x, y, w, h)) in enumerate(zip(images, boxes)):
        label = np.full(image.shape[:2], 255, dtype=np.uint8)
        label[y:y + h, x:x + w] = 11 + index
        label[:4] = 0
        cv2.imwrite(str(root / 'leftImg8bit/train/city' / f'{index}_leftImg8bit.png'), image)
        cv2.imwrite(str(root / 'gtFine/train/city' / f'{index}_gtFine_labelTrainIds.png'), label)


# base, (ConvNeXt out_indices, output_stride), rewired keys below model, head slimming for CPU
FAMILIES = {
    'two-stage': ('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', ((0, 1, 2, 3), 32),
                  {'neck.in_channels': ATTO_CHANNELS}, slim_mask_rcnn),
    'one-stage-caffe': ('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
                        ((0, 1, 2, 3), 32), {'neck.in_channels': ATTO_CHANNELS}, slim_fcos),
    'query-based': ('mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
                    ((1, 2, 3), 32), {'neck.in_channels': ATTO_CHANNELS[1:]},
                    slim_deformable_detr),
    'fpn-segmentor': ('mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', ((0, 1, 2, 3), 32),
                      {'neck.in_channels': ATTO_CHANNELS}, slim_sem_fpn),
    'decode-head-segmentor': ('mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
                              ((0, 1, 2, 3), 32), {'decode_head.in_channels': ATTO_CHANNELS,
                                                   'auxiliary_head.in_channels': ATTO_CHANNELS[2]},
                              slim_upernet),
    'dilated-d8-segmentor': (
        'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py',
        ((0, 1, 2, 3), 8), {'decode_head.in_channels': ATTO_CHANNELS[3],
                            'decode_head.c1_in_channels': ATTO_CHANNELS[0],
                            'auxiliary_head.in_channels': ATTO_CHANNELS[2]}, slim_deeplab),
    'dilated-d16-segmentor': (
        'mmseg::deeplabv3/deeplabv3_r101-d16-mg124_4xb2-40k_cityscapes-512x1024.py',
        ((0, 1, 2, 3), 16), {'decode_head.in_channels': ATTO_CHANNELS[3],
                             'auxiliary_head.in_channels': ATTO_CHANNELS[2]}, slim_deeplab),
}


def get_path(cfg, dotted):
    for key in dotted.split('.'):
        cfg = cfg[key]
    return cfg


def train_one_iteration(cfg, tmp_path):
    """Train ``cfg`` for one iteration of 2 images on a tiny COCO / ADE20K / Cityscapes written
    under ``tmp_path`` -> (the Runner, the stem weight's gradients)."""
    is_detector = cfg.default_scope == 'mmdet'
    dataset = cfg.train_dataloader.dataset
    data_root = tmp_path / Path(dataset.data_root).name
    writer = write_coco if is_detector else {'CityscapesDataset': write_cityscapes}.get(
        dataset.type, write_ade)
    writer(data_root, np.random.default_rng(0))
    cfg.work_dir = str(tmp_path / 'work_dir')
    cfg.update(val_dataloader=None, val_evaluator=None, val_cfg=None, test_dataloader=None,
               test_evaluator=None, test_cfg=None)
    cfg.default_hooks.update(checkpoint=None, logger=dict(type='LoggerHook', interval=1))
    cfg.randomness = dict(seed=0)
    fit_optim_wrapper_to_device(cfg)
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    dataset.data_root = str(data_root)
    if is_detector:
        dataset.update(ann_file='instances.json', data_prefix=dict(img='images/'))
    else:
        divide_sizes(cfg.model.data_preprocessor)  # the crop size
    divide_sizes(dataset.pipeline)
    if 'max_epochs' in cfg.train_cfg:
        cfg.train_cfg.max_epochs = 1  # 2 images, batch 2: one iteration
    else:
        cfg.train_cfg.max_iters = 1
    runner = Runner.from_cfg(cfg)
    stem_grads = []
    runner.model.backbone.downsample_layers[0][0].weight.register_hook(stem_grads.append)
    runner.train()
    return runner, stem_grads


@pytest.mark.usefixtures('single_thread')
@pytest.mark.parametrize('family', list(FAMILIES))
def test_swapped_config_is_short_loads_and_trains_one_iteration(family, tmp_path):
    base, (out_indices, output_stride), rewired, slim = FAMILIES[family]
    output = tmp_path / 'configs' / 'swapped.py'

    changes = write_swapped_config(base, str(output), 'atto', pretrain='none', complexity=False)

    text = output.read_text()
    assert f"_base_ = '{base}'" in text and len(text.splitlines()) < 50
    assert 'dataloader' not in text and 'param_scheduler' not in text  # the rest is inherited
    cfg = Config.fromfile(output)
    backbone = dict(type='mmconvnext.ConvNeXt', arch='atto', out_indices=out_indices,
                    drop_path_rate=0.4)
    if output_stride != 32:
        backbone['output_stride'] = output_stride
    assert without_scope(cfg.model.backbone.to_dict()) == backbone
    for dotted, channels in rewired.items():
        assert get_path(cfg.model, dotted) == channels
        assert any(line.startswith(f'model.{dotted}: ') for line in changes)
    preprocessor = cfg.model.data_preprocessor
    assert {key: preprocessor[key] for key in IMAGENET_RGB} == IMAGENET_RGB
    is_detector = base.startswith('mmdet')
    assert preprocessor.type == ('DetDataPreprocessor' if is_detector else 'SegDataPreProcessor')
    normalisation = next(line for line in changes if line.startswith('model.data_preprocessor'))
    if family == 'one-stage-caffe':  # BGR mean, std 1, no flip: changed, other keys kept
        assert normalisation.startswith('model.data_preprocessor: dict(mean=[102.9801, 115.9465, '
                                        '122.7717], std=[1.0, 1.0, 1.0], bgr_to_rgb=False) -> ')
        assert preprocessor.pad_size_divisor == 32
    optim = cfg.optim_wrapper
    assert optim.constructor == 'mmconvnext.LearningRateDecayOptimizerConstructor'
    assert optim.optimizer == dict(type='AdamW', lr=2e-4 if is_detector else 1e-4,
                                   betas=(0.9, 0.999), weight_decay=0.05)
    assert optim.paramwise_cfg.decay_type == ('layer_wise' if is_detector else 'stage_wise')
    assert optim.paramwise_cfg.num_layers == 5  # atto: depths[2] = 6
    if family == 'query-based':  # the base's clip_grad and non-backbone custom_keys are kept
        assert optim.clip_grad == dict(max_norm=0.1, norm_type=2)
        assert set(optim.paramwise_cfg.custom_keys) == {'sampling_offsets', 'reference_points'}

    slim(cfg.model)
    runner, stem_grads = train_one_iteration(cfg, tmp_path)

    assert runner.iter == 1
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())
    assert len(stem_grads) == 1
    assert torch.isfinite(stem_grads[0]).all() and stem_grads[0].abs().sum() > 0


@pytest.mark.parametrize('base, reason', [
    ('mmdet::ssd/ssd300_coco.py', r'neck\.out_channels=\(512, 1024, 512, 256, 256, 256\) '
     'starts with its in_channels: it passes the backbone.s outputs on'),
    ('mmseg::vit/vit_vit-b16_mln_upernet_8xb2-80k_ade20k-512x512.py',
     r'VisionTransformer outputs strides \[16, 16, 16, 16\].*single-scale pyramid'),
    ('mmdet::faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py',
     r'model\.roi_head\.shared_head \(ResLayer\) runs a stage of the base backbone on the RoI '
     'features'),
    ('mmdet::_base_/datasets/coco_detection.py', 'no model.backbone'),
    ('mmpretrain::resnet/resnet50_8xb32_in1k.py', r'only mmdet:: and mmseg::'),
    ('mmdet::no_such/config.py', 'not found'),
])
def test_refuses_bases_that_cannot_take_a_convnext_pyramid(base, reason, tmp_path):
    output = tmp_path / 'new' / 'swapped.py'
    with pytest.raises(BackboneSwapError, match=reason):
        write_swapped_config(base, str(output), 'atto', pretrain='none')
    assert not (tmp_path / 'new').exists()  # no file, no temporary, no folder left


UPERNET = 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'
DEEPLABV3_D8 = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py'


def test_refuses_a_base_normalising_in_its_pipeline(tmp_path):
    base = tmp_path / 'normalise_in_pipeline.py'
    base.write_text(f"_base_ = '{UPERNET}'\n"
                    "train_pipeline = [dict(type='LoadImageFromFile'),\n"
                    "                  dict(type='Normalize', mean=[0, 0, 0], std=[1, 1, 1]),\n"
                    "                  dict(type='PackSegInputs')]\n"
                    "train_dataloader = dict(dataset=dict(pipeline=train_pipeline))\n")
    with pytest.raises(BackboneSwapError, match=r'normalises images in its pipeline '
                                                r'\(train_pipeline\[1\]: dict\(type=.Normalize'):
        write_swapped_config(str(base), str(tmp_path / 'new.py'), 'atto', pretrain='none')
    assert not (tmp_path / 'new.py').exists()


@pytest.mark.parametrize('preprocessor, overrides, change', [
    (dict(type='DetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.], rgb_to_bgr=True,
          pad_size_divisor=32),
     dict(IMAGENET_RGB, rgb_to_bgr=False), "dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], "
     "bgr_to_rgb=None, rgb_to_bgr=True) -> dict(mean=[123.675"),
    (dict(type='SegDataPreProcessor', **IMAGENET_RGB), IMAGENET_RGB, 'kept dict(mean=[123.675'),
])
def test_normalisation_is_imagenet_rgb_whatever_the_base(preprocessor, overrides, change):
    cfg = Config(dict(model=dict(data_preprocessor=preprocessor)))
    actual, line = normalisation_overrides(cfg)
    assert actual == overrides  # only these keys are overridden: the base's others are kept
    assert line.startswith(f'model.data_preprocessor: {change}')


def test_normalisation_refuses_a_model_without_data_preprocessor():
    with pytest.raises(BackboneSwapError, match='no data_preprocessor'):
        normalisation_overrides(Config(dict(model=dict(type='EncoderDecoder'))))


@pytest.mark.parametrize('strides, base_indices, placement', [
    ([4, 8, 16, 32], (0, 1, 2, 3), ((0, 1, 2, 3), 32)),
    ([4, 8, 8, 8], (0, 1, 2, 3), ((0, 1, 2, 3), 8)),  # ResNet-D8
    ([4, 8, 16, 16], None, ((0, 1, 2, 3), 16)),  # ResNet-D16, stages read from the strides
    ([8], (3, ), ((3, ), 8)),  # only the last stage of a ResNet-D8: ConvNeXt's last stage
    ([16], (2, ), ((2, ), 32)),  # an undilated truncated backbone
    ([8, 16, 32], (2, 3, 4), ((1, 2, 3), 32)),  # out_indices that are no stages: the strides
    ([8, 8, 8], (1, 2, 3), ((1, 2, 3), 8)),
])
def test_placement_reads_dilated_and_truncated_pyramids(strides, base_indices, placement):
    pyramid = [(64 * 2**level, stride) for level, stride in enumerate(strides)]
    base = dict(type='ResNet') if base_indices is None else dict(type='ResNet',
                                                                 out_indices=base_indices)
    assert convnext_placement(pyramid, base) == placement


@pytest.mark.parametrize('strides, reason', [
    ([16, 16, 16, 16], 'several outputs share a stride.*single-scale pyramid'),
    ([8, 8, 8, 8], 'several outputs share a stride'),  # ConvNeXt has 3 stages at stride 8
    ([4, 8, 16, 32, 64], 'outputs at strides 4, 8, 16, 32 only'),
    ([2, 4, 8], 'outputs at strides 4, 8, 16, 32 only'),
    ([4, None], 'outputs at strides 4, 8, 16, 32 only'),
    ([8, 4], 'strides fall'),
])
def test_placement_refuses_pyramids_convnext_cannot_output(strides, reason):
    pyramid = [(64, stride) for stride in strides]
    with pytest.raises(BackboneSwapError, match=reason):
        convnext_placement(pyramid, dict(type='SomeBackbone'))


@pytest.mark.usefixtures('single_thread')
def test_prints_params_and_flops_of_base_and_swapped_at_the_base_test_size(tmp_path):
    """A DeepLabV3 R50-D8 base whose test size is cut to 128x64 (the count costs seconds)."""
    base = tmp_path / 'deeplabv3_small_test.py'
    base.write_text(f"_base_ = '{DEEPLABV3_D8}'\n"
                    "test_pipeline = [dict(type='LoadImageFromFile'),\n"
                    "                 dict(type='Resize', scale=(128, 64), keep_ratio=True),\n"
                    "                 dict(type='PackSegInputs')]\n"
                    "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n")
    output = tmp_path / 'swapped.py'

    changes = write_swapped_config(str(base), str(output), 'atto', pretrain='none')

    checked = next(line for line in changes if line.startswith('checked: '))
    params = float(checked.split('builds (')[1].split('M parameters')[0])
    prefix = "#params / FLOPs at 64x128 (HxW, the base's test size): base "
    assert changes[-1].startswith(prefix)
    base_figures, swapped_figures = changes[-1][len(prefix):].split(' -> swapped ')
    (base_params, base_flops), (swapped_params, swapped_flops) = (
        [float(figure[:-1]) for figure in figures.split(' / ')]
        for figures in (base_figures, swapped_figures))
    assert swapped_params == params  # the counter and the check count the same model
    assert base_params > 60 and swapped_params < base_params - 20  # ResNet-50: 23.5M, atto: 3.4M
    assert base_flops > swapped_flops > 0


@pytest.mark.parametrize('arch, pretrain, output, reason', [
    ('tiny2', 'none', 'new.py', "unknown arch 'tiny2'"),
    ('atto', '1k', 'new.py', r'No official ImageNet-1K ConvNeXt checkpoint for arch .atto.'),
    ('large', '1k', 'new.py', r'published: tiny, small, base'),
    ('tiny', 'missing.pth', 'new.py',
     "'missing.pth' is not 1k, 22k, dinov3, none or an existing"),
    ('tiny', 'none', 'new.yaml', r'must be a \.py config'),
    ('atto', 'dinov3', 'new.py', "No DINOv3 ConvNeXt checkpoint for arch 'atto'; published: "
     'tiny, small, base, large'),
    ('tiny', 'fcmae', 'new.py', "'fcmae' is not 1k, 22k, dinov3, none or an existing"),  # V2 only
])
def test_refuses_bad_input(arch, pretrain, output, reason, tmp_path):
    with pytest.raises(BackboneSwapError, match=reason):
        write_swapped_config(UPERNET, str(tmp_path / output), arch, pretrain)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize('arch, pretrain, reason', [
    ('small', '1k', r"No official ImageNet-1K ConvNeXt V2 checkpoint for arch 'small'"),
    ('atto', '22k', r'published: nano, tiny, base, large, huge'),
    ('tiny', 'in1k', "'in1k' is not 1k, 22k, fcmae, none or an existing"),
    ('tiny', 'dinov3', r'DINOv3 distilled ConvNeXt V1 blocks .*\(leave --v2 out\)'),
])
def test_v2_refuses_checkpoints_the_authors_did_not_publish(arch, pretrain, reason, tmp_path):
    with pytest.raises(BackboneSwapError, match=reason):
        write_swapped_config(UPERNET, str(tmp_path / 'new.py'), arch, pretrain, v2=True)
    assert not list(tmp_path.iterdir())


def test_amp_base_with_amp_only_keys_passes_the_build_check(tmp_path):
    """Without a GPU the check builds AmpOptimWrapper configs in fp32, dropping AMP-only keys
    such as ``loss_scale`` (mmseg's ``*-amp-*`` configs set it); the written config keeps them."""
    base = tmp_path / 'upernet_amp.py'
    base.write_text(f"_base_ = '{UPERNET}'\n"
                    "optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')\n")
    output = tmp_path / 'swapped.py'
    write_swapped_config(str(base), str(output), 'atto', pretrain='none', complexity=False)
    optim = Config.fromfile(output).optim_wrapper
    assert optim.type == 'AmpOptimWrapper' and optim.loss_scale == 'dynamic'


def test_refuses_missing_base_file(tmp_path):
    with pytest.raises(BackboneSwapError, match='does not exist'):
        write_swapped_config(str(tmp_path / 'missing.py'), str(tmp_path / 'new.py'), 'tiny')


def test_force_overwrites_and_mix_transformer_stages_map_to_convnext_stages(tmp_path):
    """Segformer's MiT-B0 (another pyramid family; its optimizer's custom_keys are kept)."""
    output = tmp_path / 'segformer_convnext.py'
    output.write_text('placeholder')
    base = 'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'

    changes = write_swapped_config(base, str(output), 'atto', 'none', force=True, complexity=False)

    assert changes[0].startswith('model.backbone: MixVisionTransformer (outputs of [32, 64, 160, '
                                 '256] channels at strides [4, 8, 16, 32])')
    cfg = Config.fromfile(output)
    assert cfg.model.decode_head.in_channels == ATTO_CHANNELS
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == dict(
        pos_block=dict(decay_mult=0.), norm=dict(decay_mult=0.), head=dict(lr_mult=10.))


R50_CHANNELS = [256, 512, 1024, 2048]


@pytest.mark.parametrize('consumer, rewired', [
    (dict(in_channels=R50_CHANNELS), ATTO_CHANNELS),
    (dict(in_channels=[512, 2048], in_index=[1, 3]), [80, 320]),
    (dict(in_channels=1024, in_index=2), 160),
    (dict(in_channels=2048), 320),  # an int without in_index reads the last level
])
def test_rewire_maps_input_channels_by_level(consumer, rewired):
    changes = rewire_consumer(('decode_head', ), consumer, R50_CHANNELS, ATTO_CHANNELS)

    assert consumer['in_channels'] == rewired
    assert [path for path, _, _ in changes] == [('decode_head', 'in_channels')]


def test_rewire_follows_nested_copies_and_lists_are_overridden_whole():
    model = dict(panoptic_head=[dict(in_channels=R50_CHANNELS, feat_channels=256,
                                     pixel_decoder=dict(in_channels=R50_CHANNELS))])
    changes = rewire_consumer(('panoptic_head', 0), model['panoptic_head'][0], R50_CHANNELS,
                              ATTO_CHANNELS)

    assert [path for path, _, _ in changes] == [
        ('panoptic_head', 0, 'in_channels'), ('panoptic_head', 0, 'pixel_decoder', 'in_channels')]
    assert sparse_overrides(model, [path for path, _, _ in changes]) == dict(panoptic_head=[
        dict(in_channels=ATTO_CHANNELS, feat_channels=256,
             pixel_decoder=dict(in_channels=ATTO_CHANNELS))])


def test_a_head_holding_a_backbone_width_in_another_key_is_refused():
    model = dict(decode_head=dict(type='FCNHead', in_channels=2048),
                 roi_head=dict(type='SomeRoIHead', extractor=dict(out_channels=1024)))
    with pytest.raises(BackboneSwapError, match=r'model\.roi_head\.extractor\.out_channels=1024 '
                                                'holds a width of the base backbone'):
        backbone_consumers(model, R50_CHANNELS)


@pytest.mark.parametrize('consumer, reason', [
    (dict(in_channels=[256, 512, 1024]), r'does not match the base backbone\'s outputs'),
    (dict(in_channels=512, in_index=2), r'does not match .* at in_index=2'),
    (dict(in_channels=[1024], in_index=2), 'a combination this tool cannot map'),
    (dict(type='HRFPN'), 'has no in_channels'),
])
def test_rewire_refuses_channels_it_cannot_map(consumer, reason):
    with pytest.raises(BackboneSwapError, match=reason):
        rewire_consumer(('neck', ), consumer, R50_CHANNELS, ATTO_CHANNELS)


def test_base_reference_is_relative_within_a_shared_folder_else_absolute():
    assert base_reference('mmdet::retinanet/a.py', '/tmp/new.py') == 'mmdet::retinanet/a.py'
    assert base_reference('/repo/configs/a.py', '/repo/work_dirs/new.py') == '../configs/a.py'
    assert base_reference('/repo/configs/a.py', '/tmp/new.py') == '/repo/configs/a.py'


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=240)


def test_cli_writes_official_checkpoint_and_prints_changes_then_refuses_overwrite(tmp_path):
    output = tmp_path / 'upernet_convnext_t.py'

    result = run_tool(UPERNET, '--arch', 'tiny', '-o', output, '--no-complexity')

    assert result.returncode == 0, result.stdout[-4000:]
    url = 'https://dl.fbaipublicfiles.com/convnext/convnext_tiny_1k_224.pth'
    for line in ('model.decode_head.in_channels: [256, 512, 1024, 2048] -> [96, 192, 384, 768]',
                 'model.auxiliary_head.in_channels: 1024 -> 384',
                 f'model.backbone.init_cfg: Pretrained {url}',
                 "model.pretrained: 'open-mmlab://resnet50_v1c'",
                 "the paper's ConvNeXt-tiny ImageNet-1K segmentation recipe",
                 f'checked: {output} loads, builds'):
        assert line in result.stdout
    cfg = Config.fromfile(output)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=url)
    assert cfg.model.pretrained is None
    written = output.read_text()

    again = run_tool(UPERNET, '--arch', 'small', '-o', output, '--no-complexity')

    assert again.returncode == 1
    assert 'exists; pass --force to overwrite it' in again.stdout
    assert output.read_text() == written


def test_cli_v2_writes_grn_backbone_with_the_v2_recipe_and_fcmae_checkpoint(tmp_path):
    output = tmp_path / 'upernet_convnextv2_atto.py'

    result = run_tool(UPERNET, '--arch', 'atto', '--v2', '--pretrain', 'fcmae', '-o', output,
                      '--no-complexity')

    assert result.returncode == 0, result.stdout[-4000:]
    url = ('https://dl.fbaipublicfiles.com/convnext/convnextv2/pt_only/'
           'convnextv2_atto_1k_224_fcmae.pt')
    for line in ('-> mmconvnext.ConvNeXt V2 (use_grn=True, layer_scale_init_value=0.) arch=atto',
                 f'model.backbone.init_cfg: Pretrained {url}',
                 "the V2 paper's ConvNeXt V2-base ImageNet-1K segmentation recipe (stand-in: the "
                 'V2 paper fine-tuned no atto)',
                 f'checked: {output} loads, builds'):
        assert line in result.stdout
    cfg = Config.fromfile(output)
    assert output.read_text().startswith('"""ConvNeXt V2-atto (FCMAE pretrained) in place of')
    assert without_scope(cfg.model.backbone.to_dict()) == dict(
        type='mmconvnext.ConvNeXt', arch='atto', out_indices=(0, 1, 2, 3), drop_path_rate=0.4,
        use_grn=True, layer_scale_init_value=0., init_cfg=dict(type='Pretrained', checkpoint=url))
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                                               weight_decay=0.05)
    assert cfg.optim_wrapper.paramwise_cfg == dict(decay_rate=0.9, decay_type='stage_wise',
                                                   num_layers=5)


def test_dinov3_pretrain_takes_its_file_and_the_v1_recipe_of_the_size():
    swap = plan_backbone_swap('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'large', 'dinov3')
    assert "checkpoint='checkpoints/dinov3_convnext_large_pretrain_lvd1689m-61fa432d.pth'" in \
        swap.text
    assert swap.text.startswith('"""ConvNeXt-large (DINOv3-distilled, DINOv3 License) in place of')
    assert "the paper's ConvNeXt-large ImageNet-22K detection recipe" in '\n'.join(swap.changes)
    assert 'use_grn' not in swap.text and "drop_path_rate=0.7" in swap.text


def test_a_v2_only_arch_selects_v2_with_its_own_recipe():
    swap = plan_backbone_swap('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'huge', '1k')
    assert "use_grn=True" in swap.text and 'layer_scale_init_value=0.0' in swap.text
    assert 'convnextv2/im1k/convnextv2_huge_1k_224_ema.pt' in swap.text
    assert "the V2 paper's ConvNeXt V2-huge ImageNet-1K detection recipe" in '\n'.join(
        swap.changes)
    assert "lr=0.0001" in swap.text and 'drop_path_rate=0.5' in swap.text


@pytest.mark.parametrize('name', sorted(
    path.stem for path in CONFIG_DIR.glob('*.py')
    if path.stem.startswith(('cascade', 'upernet', 'mask_rcnn_convnextv2'))))
def test_recipe_table_and_checkpoint_urls_match_the_paper_configs(name):
    cfg = load_config(name)
    backbone, optim = cfg.model.backbone, cfg.optim_wrapper
    task = 'segmentation' if name.startswith('upernet') else 'detection'
    recipe = Recipe(backbone.drop_path_rate, optim.optimizer.lr, optim.paramwise_cfg.decay_rate)
    if '_dinov3' in name:  # the V1 paper's recipe of the size, as the swap tool takes it
        assert paper_recipe(task, backbone.arch, 'dinov3')[0] == recipe
        assert dinov3_checkpoint_path(backbone.arch) == cfg.checkpoint_file
        return
    pretrain = '22k' if '_22k_' in cfg.checkpoint_file else '1k'
    v2 = 'convnextv2' in name
    assert (V2_PAPER_RECIPES if v2 else PAPER_RECIPES)[task, backbone.arch, pretrain] == recipe
    assert official_checkpoint_url(backbone.arch, pretrain, v2) == cfg.checkpoint_file

"""Fine-tuning from whole COCO / ADE20K models: mmdet's / mmseg's zoo ConvNeXt models and the
official repository's, loaded into our configs by ``load_from`` / ``tools/test.py`` (mmengine's
loader, our backbone renaming their layout) and by ``tools/convert_checkpoint.py --whole-model``.

Their models are built from their own configs (mmdet's ``convnext/`` Mask R-CNN and Cascade
configs, mmseg's ``convnext/`` UperNet: mmpretrain's ConvNeXt), with random weights; both sides
are narrowed alike (1-block stages at 1/12 of T's widths, slim heads) so that they build fast.
"""
import re
import sys

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.utils import import_modules_from_strings
from tiny_runs import (CONFIG_DIR, NARROW_TINY_ARCH, ade_config, load_tool, one_thread, randomise,
                       relative_error, saved_metrics, slim_rcnn)
from torch.utils._pytree import tree_leaves

import mmconvnext  # noqa: F401  (registries)
from mmconvnext.engine.hooks import describe_checkpoint_load

ONE_BLOCK_ARCH = dict(depths=[1, 1, 1, 1], channels=NARROW_TINY_ARCH['channels'])
#: (their config, our config) of the same model
ZOO_PAIRS = [
    ('mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py',
     'mask_rcnn_convnext_t'),
    ('mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py',
     'cascade_convnext_t'),
    ('mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py', 'upernet_convnext_t'),
]


def narrow(cfg):
    """``cfg``'s model with the 1-block narrow backbone (no pretrained weights) and slim heads."""
    model = cfg.model
    model.backbone.update(arch=ONE_BLOCK_ARCH, init_cfg=None)
    if 'roi_head' in model:
        slim_rcnn(model, width=32)
    else:
        channels = ONE_BLOCK_ARCH['channels']
        model.decode_head.update(in_channels=channels, channels=32)
        model.auxiliary_head.update(in_channels=channels[2], channels=16)
    return cfg


def build(cfg):
    init_default_scope(cfg.default_scope)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    return MODELS.build(cfg.model)


def tensor_outputs(model, x):
    """The backbone's (+ neck's) features, then every tensor of the model's ``mode='tensor'``
    forward (detectors: RPN proposals through every RoI stage; segmentors: the logits)."""
    with torch.no_grad():
        features = tree_leaves(model.extract_feat(x))
        if hasattr(model, 'roi_head'):
            size = tuple(x.shape[2:])
            sample = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size,
                                                 batch_input_shape=size, scale_factor=(1., 1.)))
            return features + tree_leaves(model(x, [sample], mode='tensor'))
        return features + tree_leaves(model(x, mode='tensor'))


@pytest.mark.parametrize('theirs, ours', ZOO_PAIRS, ids=['mask-rcnn', 'cascade', 'upernet'])
def test_zoo_model_loads_into_our_config_with_equal_outputs(theirs, ours, tmp_path, log_lines):
    their_model = randomise(build(narrow(get_config(theirs))))
    assert type(their_model.backbone).__module__.startswith('mmpretrain')
    checkpoint = tmp_path / 'zoo.pth'
    torch.save({'meta': {'mmdet_version': '3.3.0', 'epoch': 36},
                'state_dict': their_model.state_dict()}, checkpoint)
    our_model = build(narrow(Config.fromfile(CONFIG_DIR / f'{ours}.py'))).eval()

    report = describe_checkpoint_load(our_model, torch.load(checkpoint, weights_only=True))
    load_checkpoint(our_model, str(checkpoint), strict=True)  # every key matched, or it raises

    expected = len(our_model.state_dict())
    assert report.splitlines()[0] == f"checkpoint load: {expected} of the model's {expected} " \
                                     'tensors loaded'
    assert "renamed to mmconvnext's backbone layout: backbone.* (mmpretrain layout)" in report
    assert "backbone.*: the checkpoint's mmpretrain layout renamed to mmconvnext's" in log_lines()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 128, 160)
    outs, refs = tensor_outputs(our_model, x), tensor_outputs(their_model, x)
    assert len(outs) == len(refs) >= 5  # 4 or 5 feature maps, then the heads' outputs
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape and relative_error(out, ref) < 1e-5


def coco_model(num_classes):
    cfg = narrow(Config.fromfile(CONFIG_DIR / 'mask_rcnn_convnext_t.py'))
    cfg.model.roi_head.bbox_head.num_classes = num_classes
    cfg.model.roi_head.mask_head.num_classes = num_classes
    return build(cfg)


def official_checkpoint(model, path):
    """``model`` saved as the official repository's mmdet 2.x training saved its COCO models
    (``object_detection/mmcv_custom/runner/checkpoint.py``: meta with the versions, time and
    CLASSES; the backbone in the official layout, the heads named as mmdet 2.x, which 3.x
    kept)."""
    classes = tuple(f'class {index}' for index in range(80))
    torch.save({'meta': {'mmdet_version': '2.11.0', 'mmcv_version': '1.3.0', 'CLASSES': classes,
                         'epoch': 36, 'time': 'Mon Jan 10 12:00:00 2022',
                         'config': 'model = dict(...)'},
                'state_dict': model.state_dict(),
                'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-4, 'params': [0]}]}}, path)
    return path


def test_fine_tuning_into_other_classes_keeps_fresh_class_layers_and_says_which(tmp_path):
    source = randomise(coco_model(80))
    checkpoint = official_checkpoint(source, tmp_path / 'mask_rcnn_convnext_tiny_1k_3x.pth')
    target = coco_model(3)
    initial = {key: value.clone() for key, value in target.state_dict().items()}

    report = describe_checkpoint_load(target, torch.load(checkpoint, weights_only=True))
    load_checkpoint(target, str(checkpoint))

    class_layers = {'roi_head.bbox_head.fc_cls.weight': ((81, 256), (4, 256)),
                    'roi_head.bbox_head.fc_cls.bias': ((81, ), (4, )),
                    'roi_head.bbox_head.fc_reg.weight': ((320, 256), (12, 256)),
                    'roi_head.bbox_head.fc_reg.bias': ((320, ), (12, )),
                    'roi_head.mask_head.conv_logits.weight': ((80, 32, 1, 1), (3, 32, 1, 1)),
                    'roi_head.mask_head.conv_logits.bias': ((80, ), (3, ))}
    for key, value in target.state_dict().items():
        expected = initial[key] if key in class_layers else source.state_dict()[key]
        assert torch.equal(value, expected), key
    total = len(initial)
    lines = report.splitlines()
    assert lines[0] == f"checkpoint load: {total - 6} of the model's {total} tensors loaded"
    assert lines[1].strip().startswith('kept as initialised, another shape in the checkpoint')
    assert lines[1].endswith('; '.join(f'{key} {theirs} -> {ours}'
                                       for key, (theirs, ours) in class_layers.items()))
    assert len(lines) == 2  # no other key is left out or unused


def test_a_detector_of_another_backbone_is_named_not_loaded_silently():
    """A ResNet Mask R-CNN into our config: the report names the backbone tensors it lacks and
    the ones it cannot use; the heads of the same shapes are loaded."""
    theirs = get_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    theirs.model.backbone.update(depth=18, init_cfg=None)
    theirs.model.neck.in_channels = [64, 128, 256, 512]
    state_dict = build(theirs).state_dict()
    ours = build(Config.fromfile(CONFIG_DIR / 'mask_rcnn_convnext_t.py'))

    report = describe_checkpoint_load(ours, {'state_dict': state_dict}).splitlines()

    backbone = len([key for key in ours.state_dict() if key.startswith('backbone.')])
    assert report[0].startswith('checkpoint load: ')
    # the 4 lateral convs' weights read other widths (their biases load)
    assert int(report[0].split()[2]) == len(ours.state_dict()) - backbone - 4
    assert report[1].strip().startswith('kept as initialised, another shape in the checkpoint')
    assert 'neck.lateral_convs.3.conv.weight (256, 512, 1, 1) -> (256, 768, 1, 1)' in report[1]
    assert report[2].strip() == f'kept as initialised, not in the checkpoint: backbone ({backbone})'
    resnet = len([key for key in state_dict if key.startswith('backbone.')])
    assert report[3].strip() == f'not used, the model has no such tensor: backbone ({resnet})'
    assert len(report) == 4


def test_tools_test_evaluates_a_zoo_checkpoint_as_it_is(tmp_path, monkeypatch, capfd):
    """``tools/test.py CONFIG ZOO_CHECKPOINT`` (mmseg's zoo layout) loads every tensor and
    evaluates; the report is in the log. (In this process: the tool's ``main``.)"""
    config = ade_config(tmp_path, max_iters=1, checkpoint_interval=1)
    their_cfg = get_config(ZOO_PAIRS[2][0])
    their_cfg.model.backbone.update(arch=NARROW_TINY_ARCH, init_cfg=None)
    their_cfg.model.decode_head.update(in_channels=NARROW_TINY_ARCH['channels'], channels=32)
    their_cfg.model.auxiliary_head.update(in_channels=NARROW_TINY_ARCH['channels'][2], channels=16)
    checkpoint = tmp_path / 'upernet_convnext_tiny_fp16_512x512_160k_ade20k.pth'
    torch.save({'state_dict': randomise(build(their_cfg)).state_dict()}, checkpoint)

    monkeypatch.setattr(sys, 'argv', ['tools/test.py', str(config), str(checkpoint),
                                      '--work-dir', str(tmp_path / 'test')])
    with one_thread():
        load_tool('test.py').main()
    out = capfd.readouterr().out

    assert "backbone.*: the checkpoint's mmpretrain layout renamed to mmconvnext's" in out
    loaded = re.search(r"checkpoint load: (\d+) of the model's (\d+) tensors loaded\n", out)
    assert loaded and loaded[1] == loaded[2], out[-3000:]
    assert 0 <= saved_metrics(tmp_path / 'test')['mIoU'] <= 100


def test_convert_tool_whole_model(tmp_path, monkeypatch, capsys):
    """``convert_checkpoint.py --whole-model`` keeps the heads and renames the backbone; a
    backbone-only file and a non-ConvNeXt backbone are refused with a message, nothing written."""
    tool = load_tool('convert_checkpoint.py')
    their_model = randomise(build(narrow(get_config(ZOO_PAIRS[2][0]))))
    source = tmp_path / 'upernet_zoo.pth'
    torch.save({'state_dict': their_model.state_dict()}, source)

    def convert(src, dst):
        monkeypatch.setattr(sys, 'argv', ['convert_checkpoint.py', str(src), str(dst),
                                          '--whole-model'])
        tool.main()
        return capsys.readouterr().out

    assert 'its backbone from the mmpretrain layout' in convert(source, tmp_path / 'ours.pth')
    state_dict = torch.load(tmp_path / 'ours.pth', weights_only=True)['state_dict']
    our_model = build(narrow(Config.fromfile(CONFIG_DIR / 'upernet_convnext_t.py')))
    assert set(state_dict) == set(our_model.state_dict())
    load_checkpoint(our_model, str(tmp_path / 'ours.pth'), strict=True)

    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(8, 3, 7, 7),
                               'decode_head.conv_seg.weight': torch.zeros(150, 32, 1, 1)}},
               tmp_path / 'resnet.pth')
    torch.save({k[len('backbone.'):]: v for k, v in their_model.state_dict().items()
                if k.startswith('backbone.')}, tmp_path / 'backbone.pth')
    for name, message in (('resnet.pth', 'unrecognised ConvNeXt checkpoint format'),
                          ('backbone.pth', 'no key starts with backbone.')):
        with pytest.raises(SystemExit, match=message):
            convert(tmp_path / name, tmp_path / f'out_{name}')
        assert not (tmp_path / f'out_{name}').exists()

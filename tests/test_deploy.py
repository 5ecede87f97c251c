"""Deployment (:mod:`mmconvnext.deploy`, tools/export.py, tools/test.py --backend): each model
family at random weights as one ONNX file, run by ONNX Runtime (and OpenVINO) through the same
evaluation path as the PyTorch model, on a tiny COCO (80 categories) / ADE20K.

Detections: at least 99 % of PyTorch's detections scoring >= 0.05 have an exported one of the
same class at box IoU >= 0.99, and their masks agree on 99 % of pixels; segmentation: the class
maps agree on 99.9 % of pixels. Bad input exits 1 with a message and writes nothing.
"""
import copy
import re
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from tiny_runs import (load_config, load_tool, narrow_on_tiny_data, randomise, saved_metrics,
                       slim_rcnn, slim_upernet, write_ade, write_coco_layout, write_config)

from mmconvnext.apis import init_inference_model
from mmconvnext.deploy import deployed_model_config, export_model, open_session, packages
from mmconvnext.deploy.graph_ops import AdaptiveAvgPool2dByMatrices, batched_soft_nms, grouped_nms
from mmconvnext.deploy.parity import class_map_agreement, matched_detections
from mmconvnext.registry import MODELS
from mmconvnext.swap import write_swapped_config

ATTO_CHANNELS = [40, 80, 160, 320]


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """A tiny COCO (train2017 / val2017, 80 categories) and ADE20K."""
    root = tmp_path_factory.mktemp('deploy_data')
    write_coco_layout(root / 'coco')
    write_ade(root / 'ade', np.random.default_rng(0))
    return root


def _unpadded_detection(cfg):
    """mmdet's score threshold (slim_rcnn keeps every box); the 96 x 64 images resized to
    192 x 128: multiples of 32, unpadded (the graph clips boxes to its padded input, mmdet to
    the image; docs/deploy.md)."""
    cfg.model.test_cfg.rcnn.score_thr = 0.05
    (resize, ) = [step for step in cfg.test_dataloader.dataset.pipeline if 'scale' in step]
    resize.scale = (192, 128)


def _detector(name):
    def build(data):
        cfg = load_config(name)
        narrow_on_tiny_data(cfg, data / 'coco', ('test_dataloader', ))
        slim_rcnn(cfg.model)
        _unpadded_detection(cfg)
        return cfg
    return build


def _segmentor(name):
    def build(data):
        cfg = load_config(name)
        narrow_on_tiny_data(cfg, data / 'ade', ('test_dataloader', ))
        slim_upernet(cfg, 32)
        return cfg
    return build


def _swapped(base, slim):
    def build(data):
        path = data / f'swapped_{slim.__name__}.py'
        if not path.exists():
            write_swapped_config(base, str(path), 'atto', pretrain='none', complexity=False)
        cfg = Config.fromfile(path)
        slim(cfg, data)
        return cfg
    return build


def _slim_swapped_mask_rcnn(cfg, data):
    narrow_on_tiny_data(cfg, data / 'coco', ('test_dataloader', ))
    slim_rcnn(cfg.model)
    _unpadded_detection(cfg)
    cfg.test_dataloader.dataset.update(ann_file='annotations/instances_val2017.json',
                                       data_prefix=dict(img='val2017/'))


def _slim_swapped_deeplab(cfg, data):
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.update(channels=32, dilations=(1, 2, 3, 4))
    cfg.model.auxiliary_head.channels = 16
    cfg.model.data_preprocessor.size = (64, 64)
    loader = cfg.test_dataloader
    loader.update(num_workers=0, persistent_workers=False)
    loader.dataset.data_root = str(data / 'ade')
    loader.dataset.pipeline[1].scale = (256, 64)


def _fewer_soft_nms_rounds(build):
    """20 detections per image: soft-NMS exports one unrolled round per detection, and 100
    take 90 s to export on 2 cores."""
    def build_fewer(data):
        cfg = build(data)
        cfg.model.test_cfg.rcnn.max_per_img = 20
        return cfg
    return build_fewer


FAMILIES = {
    'cascade-v1': _detector('cascade_convnext_t'),
    'mask-rcnn-v2-soft-nms': _fewer_soft_nms_rounds(_detector('mask_rcnn_convnextv2_b')),
    'upernet-v1-slide': _segmentor('upernet_convnext_t'),
    'upernet-v2-slide': _segmentor('upernet_convnextv2_b'),
    'swapped-mmdet-mask-rcnn': _swapped('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
                                        _slim_swapped_mask_rcnn),
    'swapped-mmseg-aspp-os8': _swapped(
        'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py', _slim_swapped_deeplab),
}


def _random_checkpoint(cfg, path):
    """Random weights (written to ``path``) whose classifiers are sharp enough (weights x 300)
    that classes win clearly: at 1/81 each, no detection would reach mmdet's 0.05."""
    model = randomise(init_inference_model(cfg), seed=1)
    if cfg.default_scope == 'mmseg':
        classifiers = [model.decode_head.conv_seg]
    else:
        heads = model.roi_head.bbox_head
        classifiers = [head.fc_cls for head in (heads if hasattr(heads, '__len__') else [heads])]
    with torch.no_grad():
        for classifier in classifiers:
            classifier.weight *= 300
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)  # mmseg reads 'meta'
    return model


def _predictions(model, cfg):
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader))
    with torch.no_grad():
        return [sample for data in loader for sample in model.test_step(data)]


def _mask_agreement(reference, exported):
    """Of each reference detection found again (same label, IoU >= 0.99), the share of its
    mask's pixels that the exported mask agrees on; the smallest share."""
    from torchvision.ops import box_iou
    shares = []
    iou = box_iou(reference.bboxes, exported.bboxes)
    for index in range(len(reference)):
        same = (iou[index] >= 0.99) & (exported.labels == reference.labels[index])
        if same.any():
            other = exported.masks[same.nonzero()[0, 0]]
            shares.append((reference.masks[index] == other).float().mean().item())
    return min(shares, default=1.)


@pytest.mark.usefixtures('single_thread')
@pytest.mark.parametrize('family', list(FAMILIES))
def test_each_family_exports_and_the_runtime_predicts_what_pytorch_predicts(
        family, tiny_data, tmp_path):
    cfg = FAMILIES[family](tiny_data)
    init_default_scope(cfg.default_scope)
    checkpoint = tmp_path / 'random.pth'
    model = _random_checkpoint(cfg, checkpoint)
    segmentor = cfg.default_scope == 'mmseg'
    out = tmp_path / 'model.onnx'

    report = export_model(cfg, str(checkpoint), str(out), dynamic=True, with_logits=segmentor)

    assert out.exists() and not (tmp_path / 'model.onnx.partial').exists()
    if segmentor:
        assert report.pixel_agreement >= 0.999, report
    else:
        found, total = report.detections
        assert found >= 0.99 * total, report
    reference = _predictions(model, cfg)
    exported = _predictions(MODELS.build(deployed_model_config(cfg, str(out), 'onnxruntime')), cfg)
    if segmentor:
        for ref, got in zip(reference, exported):
            agreement = class_map_agreement(ref.pred_sem_seg.data, got.pred_sem_seg.data)
            assert agreement >= 0.999, family
            assert len(ref.pred_sem_seg.data.unique()) > 1  # not a trivial map
        return
    counts = []
    for ref, got in zip(reference, exported):
        ref, got = ref.pred_instances, got.pred_instances
        found, total = matched_detections(
            dict(boxes=ref.bboxes, scores=ref.scores, labels=ref.labels),
            dict(boxes=got.bboxes, scores=got.scores, labels=got.labels))
        assert found >= 0.99 * total, (family, found, total)
        assert _mask_agreement(ref, got) >= 0.99
        counts.append(total)
    assert sum(counts) > 0  # the test compared detections


def test_adaptive_pooling_by_matrices_equals_torch_at_any_size():
    x = torch.randn(2, 3, 37, 11, dtype=torch.float64)
    for size in (1, 2, 3, 6, (5, 13)):
        expected = torch.nn.functional.adaptive_avg_pool2d(x, size)
        assert torch.allclose(AdaptiveAvgPool2dByMatrices(size)(x), expected)


@pytest.mark.parametrize('method', ['linear', 'gaussian', 'naive'])
def test_soft_nms_keeps_what_mmcv_keeps(method):
    from mmcv.ops import batched_nms
    generator = torch.Generator().manual_seed(0)
    corner = torch.rand(300, 2, generator=generator) * 100
    boxes = torch.cat([corner, corner + 1 + 40 * torch.rand(300, 2, generator=generator)], 1)
    scores = torch.rand(300, generator=generator)
    groups = torch.randint(0, 3, (300, ), generator=generator)
    nms = dict(type='soft_nms', iou_threshold=0.5, method=method, min_score=0.05)
    dets, keep = batched_nms(boxes, scores, groups, nms)

    picks, picked_scores = batched_soft_nms(boxes, scores, groups, (200, 200), 100, 0.5,
                                            min_score=0.05, method=method)

    assert torch.equal(picks, keep[:100])
    assert torch.allclose(picked_scores, dets[:100, 4])
    empty = batched_soft_nms(boxes[:0], scores[:0], groups[:0], (200, 200), 100)
    assert [len(part) for part in empty] == [0, 0]


def _tiny_upernet_v2(data, tmp_path):
    """The tiny V2 UperNet config (written to ``tmp_path``) and a random checkpoint of it."""
    cfg = FAMILIES['upernet-v2-slide'](data)
    init_default_scope('mmseg')
    checkpoint = tmp_path / 'random.pth'
    model = _random_checkpoint(cfg, checkpoint)
    return write_config(cfg, tmp_path / 'upernet_v2.py'), checkpoint, model


@pytest.mark.usefixtures('single_thread')
def test_fp16_keeps_grn_and_layernorm_statistics_in_fp32_where_fp16_would_overflow(
        tiny_data, tmp_path):
    config, checkpoint, model = _tiny_upernet_v2(tiny_data, tmp_path)
    with torch.no_grad():  # large activations: every block's LayerNorm and 1x1 conv x 300
        for name, param in model.backbone.named_parameters():
            if name.endswith(('.norm.weight', '.pwconv1.weight')):
                param *= 300
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, checkpoint)
    grn_norms = []
    for module in model.backbone.modules():
        if type(module).__name__ == 'GRN':
            module.register_forward_hook(lambda _, args, __: grn_norms.append(
                torch.linalg.vector_norm(args[0], dim=(1, 2)).max().item()))
    with torch.no_grad():
        model.backbone(torch.randn(1, 3, 64, 64) * 2)
    assert max(grn_norms) > 65504  # a float16 GRN norm would be inf

    report = export_model(Config.fromfile(config), str(checkpoint), str(tmp_path / 'half.onnx'),
                          shape=(64, 64), half=True, with_logits=True)

    assert report.pixel_agreement >= 0.99, report
    logits = open_session(str(tmp_path / 'half.onnx'), 'onnxruntime')(
        (np.random.default_rng(0).random((1, 3, 64, 64)) * 255).astype(np.float32))['logits']
    assert np.isfinite(logits).all()


def _checkpoint_of(cfg, path):
    """``path``, holding the (initial) weights of the model of ``cfg``."""
    torch.save({'meta': {}, 'state_dict': init_inference_model(cfg).state_dict()}, path)
    return path


def _exit_message(tool_main, argv):
    with pytest.raises(SystemExit) as exit_info:
        tool_main(argv)
    return str(exit_info.value.code)


@pytest.mark.usefixtures('single_thread')
def test_export_tool_then_test_tool_with_each_runtime_gives_pytorchs_miou(
        tiny_data, tmp_path, monkeypatch, capsys):
    config, checkpoint, _ = _tiny_upernet_v2(tiny_data, tmp_path)
    out = tmp_path / 'upernet.onnx'

    load_tool('export.py').main([str(config), str(checkpoint), str(out), '--dynamic', '--logits'])

    printed = capsys.readouterr().out
    assert f'wrote {out}' in printed and 'segmentation' in printed, printed
    assert 'outputs: class_map, logits' in printed
    assert re.search(r'class map: 100\.000 % of pixels agree', printed), printed
    test_tool = load_tool('test.py')
    mious = {}
    for runtime in (None, 'onnxruntime', 'openvino'):
        work_dir = tmp_path / f'test_{runtime}'
        argv = [str(config), str(out if runtime else checkpoint), '--work-dir', str(work_dir)]
        monkeypatch.setattr(sys, 'argv', ['test.py', *argv] + (
            ['--backend', runtime] if runtime else []))
        test_tool.main()
        mious[runtime] = saved_metrics(work_dir)['mIoU']
    assert abs(mious['onnxruntime'] - mious[None]) <= 0.2, mious
    assert abs(mious['openvino'] - mious[None]) <= 0.2, mious


def test_bad_input_exits_1_with_a_message_and_writes_nothing(tiny_data, tmp_path, monkeypatch):
    config, checkpoint, _ = _tiny_upernet_v2(tiny_data, tmp_path)
    export = load_tool('export.py').main
    out = tmp_path / 'model.onnx'
    other = tmp_path / 'other.pth'
    torch.save({'meta': {}, 'state_dict': {'backbone.stem.weight': torch.zeros(1)}}, other)
    fcos = tmp_path / 'fcos.py'
    write_swapped_config('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', str(fcos), 'atto',
                         pretrain='none', complexity=False)
    init_default_scope('mmdet')
    fcos_checkpoint = _checkpoint_of(Config.fromfile(fcos), tmp_path / 'fcos.pth')
    binary = Config.fromfile(config)
    binary.model.decode_head.update(out_channels=1, num_classes=2)
    init_default_scope('mmseg')
    binary_checkpoint = _checkpoint_of(binary, tmp_path / 'binary.pth')
    cases = [
        ([config, other, out], r'does not fit the model of the config: it lacks weights of'),
        ([fcos, fcos_checkpoint, out], r'model\.type FCOS: no exportable graph; supported: '
         r'TwoStageDetector, EncoderDecoder'),
        ([config, checkpoint, out, '--shape', '64', '80'],
         r'input shape 64 x 80: H and W must be positive multiples of 32'),
        ([config, binary_checkpoint, out, '--cfg-options', 'model.decode_head.out_channels=1',
          'model.decode_head.num_classes=2'],
         r'model\.decode_head\.out_channels: a 1-channel \(thresholded\) head does not export'),
        ([config, tmp_path / 'missing.pth', out], r'checkpoint .*missing\.pth does not exist'),
        ([config, checkpoint, tmp_path / 'no_folder' / 'model.onnx'], r'does not exist'),
    ]
    for argv, message in cases:
        text = _exit_message(export, [str(arg) for arg in argv])
        assert text.startswith('tools/export.py: error: '), text
        assert re.search(message, text), (message, text)
        assert not list(tmp_path.rglob('*.onnx*'))
    out.write_bytes(b'not a model')
    for argv, message in (
            ([out, '--backend', 'onnxruntime'], r'--backend onnxruntime: .*model\.onnx is not an '
             r'ONNX file'),
            ([out, '--backend', 'onnxruntime', '--precision', 'bf16'],
             r'--backend onnxruntime: runtime onnxruntime computes in f32, not bf16'),
            ([out], r'model\.onnx is an ONNX file: give --backend onnxruntime or openvino'),
            ([checkpoint, '--precision', 'bf16'],
             r'--threads and --precision are options of --backend')):
        monkeypatch.setattr(sys, 'argv', ['test.py', str(config), *map(str, argv)])
        text = _exit_message(lambda argv: load_tool('test.py').main(), None)
        assert re.search(message, text), (message, text)
    real_find_spec = packages.find_spec
    monkeypatch.setattr(packages, 'find_spec', lambda name: None if name in (
        'onnxruntime', 'openvino') else real_find_spec(name))
    text = _exit_message(export, [str(config), str(checkpoint), str(out)])
    assert re.search(r'export needs the Python package\(s\) onnxruntime, not installed: pip '
                     r'install -r requirements/deploy.txt', text), text
    monkeypatch.setattr(sys, 'argv', ['test.py', str(config), str(out), '--backend', 'openvino'])
    text = _exit_message(lambda argv: load_tool('test.py').main(), None)
    assert text == ('tools/test.py: error: --backend openvino: runtime openvino needs the Python '
                    'package(s) openvino, not installed: pip install -r requirements/deploy.txt')


def test_grouped_nms_keeps_what_mmcv_keeps_per_class():
    from mmcv.ops import batched_nms
    generator = torch.Generator().manual_seed(0)
    classes, rois = 5, 200
    corner = torch.rand(classes, rois, 2, generator=generator) * 100
    boxes = torch.cat([corner, corner + 1 + 40 * torch.rand(classes, rois, 2,
                                                            generator=generator)], -1)
    scores = torch.rand(classes, rois, generator=generator)
    labels = torch.arange(classes)[:, None].expand(-1, rois)
    confident = scores > 0.3
    dets, keep = batched_nms(boxes[confident], scores[confident], labels[confident],
                             dict(type='nms', iou_threshold=0.5))

    kept = grouped_nms(boxes, scores, 0.5, 0.3, 1000)

    kept_scores = scores[kept[:, 0], kept[:, 1]]
    assert torch.equal(kept_scores.sort(descending=True).values, dets[:, 4])
    assert torch.equal(kept[:, 0], kept[:, 0].sort().values)  # group by group
    capped = grouped_nms(boxes, scores, 0.5, 0.3, 2)
    assert capped[:, 0].unique_consecutive(return_counts=True)[1].tolist() == [2] * classes

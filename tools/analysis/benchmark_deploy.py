"""Batch-1 CPU latency of a config's model: PyTorch eager against its exported ONNX file in ONNX
Runtime and OpenVINO (float32, and OpenVINO's bfloat16), each through the whole evaluation path.

    python tools/analysis/benchmark_deploy.py CONFIG [CHECKPOINT] [--shape H W] [--fp16]
        [--warmup 1] [--iters 5] [--keep-onnx FILE] [--cfg-options KEY=VALUE ...]

One synthetic image (seeded uniform noise, H x W; default: the config's test scale, see
``tools/export.py``) as the test pipeline packs it. PyTorch: the model's ``test_step`` (data
preprocessor, network, post-processing, mask pasting or the sliding window). Runtimes: the file
written by ``tools/export.py``'s exporter (fixed shape) in ``tools/test.py --backend``'s model
(:class:`mmconvnext.deploy.DeployedModel`): the same padding, mask pasting and windows around
the file. Without CHECKPOINT the weights are random; a random detector detects nothing at
mmdet's 0.05, so give ``--cfg-options model.test_cfg.rcnn.score_thr=0`` for the work of
``max_per_img`` detections with masks. Median seconds over ``--iters`` after ``--warmup``, and
the speed-up over PyTorch, printed with the machine and the versions.
"""
import argparse
import os
import os.path as osp
import tempfile
from importlib.metadata import version

import torch
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

from mmconvnext.analysis.step_timing import device_name, median_seconds
from mmconvnext.apis import init_inference_model
from mmconvnext.deploy import RUNTIME_PACKAGES, deployed_model_config, export_model
from mmconvnext.deploy.exporter import default_input_shape, parity_image
from mmconvnext.deploy.runtimes import RUNTIME_PRECISIONS
from mmconvnext.engine.runner_setup import read_config
from mmconvnext.registry import MODELS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='mmdet or mmseg config')
    parser.add_argument('checkpoint', nargs='?', help='weights (default: random)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input height and width (default: the config's test scale)")
    parser.add_argument('--fp16', action='store_true', help='export with --fp16')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs first')
    parser.add_argument('--iters', type=int, default=5, help='timed runs')
    parser.add_argument('--keep-onnx', help='keep the exported file here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.iters < 1:
        parser.error(f'--warmup {args.warmup} --iters {args.iters}: need warmup >= 0, iters >= 1')
    return args


def packed_image(cfg, shape):
    """One test batch of the noise image of ``shape``: BGR uint8 (3, H, W) with the data
    sample the test pipeline would pack (no resize: scale factor 1)."""
    rgb = parity_image(shape)[0].round().to(torch.uint8)
    if cfg.default_scope == 'mmdet':
        from mmdet.structures import DetDataSample as Sample
    else:
        from mmseg.structures import SegDataSample as Sample
    meta = dict(img_shape=tuple(shape), ori_shape=tuple(shape), scale_factor=(1., 1.))
    return dict(inputs=[rgb.flip(0)], data_samples=[Sample(metainfo=meta)])


def main():
    args = parse_args()
    cfg = read_config(args.config, args.cfg_options)
    init_default_scope(cfg.default_scope)
    model = init_inference_model(cfg, args.checkpoint)
    task = 'detection' if cfg.default_scope == 'mmdet' else 'segmentation'
    shape = tuple(args.shape) if args.shape else default_input_shape(cfg, task)
    data = packed_image(cfg, shape)
    with torch.no_grad():
        seconds = dict(pytorch=median_seconds(lambda: model.test_step(data), args.warmup,
                                              args.iters, 'cpu'))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = osp.join(tmp, 'random.pth')
            torch.save({'meta': {}, 'state_dict': model.state_dict()}, checkpoint)
        path = args.keep_onnx or osp.join(tmp, 'model.onnx')
        report = export_model(cfg, checkpoint, path, shape, half=args.fp16,
                              with_logits=task == 'segmentation')
        for runtime, precisions in RUNTIME_PRECISIONS.items():
            for precision in precisions:
                deployed = MODELS.build(deployed_model_config(cfg, path, runtime,
                                                              precision=precision))
                name = runtime if precision == 'f32' else f'{runtime} {precision}'
                seconds[name] = median_seconds(lambda: deployed.test_step(data), args.warmup,
                                               args.iters, 'cpu')
        size_mib = os.path.getsize(path) / 2**20
    versions = ', '.join(f'{name} {version(name)}' for name in ('torch', *RUNTIME_PACKAGES))
    print(f'{osp.basename(args.config)}: {task}, input 1 x 3 x {shape[0]} x {shape[1]}, '
          f"{'float16' if args.fp16 else 'float32'} file {size_mib:.0f} MiB; {device_name('cpu')}; "
          f'{versions}')
    print(f'parity of the file (ONNX Runtime vs PyTorch on the noise image): {report.differences}'
          + (f', detections {report.detections}' if report.detections else '')
          + (f', pixels {report.pixel_agreement:.5f}' if report.pixel_agreement else ''))
    print(f"{'runtime':<14} {'s / image':>10} {'vs PyTorch':>11}")
    for runtime, value in seconds.items():
        print(f"{runtime:<14} {value:>10.3f} {seconds['pytorch'] / value:>10.2f}x")


if __name__ == '__main__':
    main()

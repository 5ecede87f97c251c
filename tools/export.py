"""Export a trained detector or segmentor to one ONNX file, checked against PyTorch.

    python tools/export.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--dynamic] [--fp16]
        [--logits] [--image IMAGE] [--cfg-options KEY=VALUE ...]

The file holds the whole inference (normalisation to detections and masks, or to the class
map; docs/deploy.md names its inputs and outputs) in standard ONNX operators. ``--shape``: the
input's H and W, multiples of 32 (default: the config's test scale, or its sliding window);
``--dynamic``: any multiples of 32. ``--fp16``: float16 backbone and neck. ``--logits``:
segmentors also output the logits, which ``tools/test.py --backend`` needs. After writing, ONNX
Runtime runs the file beside PyTorch on ``--image`` (default: seeded noise) and the largest
differences are printed. Exit status 1 with a message, and no file, when the model, checkpoint,
shape or a package is not right.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from mmconvnext.engine.runner_setup import SetupError, read_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='mmdet or mmseg config file')
    parser.add_argument('checkpoint', help='the trained checkpoint (.pth)')
    parser.add_argument('out', help='the ONNX file to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input height and width, multiples of 32 (default: the config's "
                        'test scale)')
    parser.add_argument('--dynamic', action='store_true',
                        help='any input H and W that are multiples of 32 (segmentors: any N)')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 backbone and neck (LayerNorm and GRN statistics float32)')
    parser.add_argument('--logits', action='store_true',
                        help='segmentors: also output the logits (tools/test.py --backend needs '
                        'them)')
    parser.add_argument('--image', help='image for the check against PyTorch (default: noise)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    return parser.parse_args(argv)


def _format_report(report):
    shape = ' x '.join(str(side) for side in report.input_shape)
    lines = [f'wrote {report.path} ({osp.getsize(report.path) / 2**20:.1f} MiB): {report.task}, '
             f'input image {shape} float32 RGB 0-255'
             + (f" (dynamic: {'N, and ' if report.task == 'segmentation' else ''}H, W "
                'multiples of 32)' if report.dynamic else ''),
             f"outputs: {', '.join(report.output_names)}",
             'ONNX Runtime vs PyTorch (float32), largest |difference|: ' + ', '.join(
                 f'{name} {"count differs" if diff is None else f"{diff:.3g}"}'
                 for name, diff in report.differences.items())]
    if report.detections is not None:
        found, total = report.detections
        lines.append(f'detections: {found} of PyTorch\'s {total} with score >= 0.05 found at '
                     'IoU >= 0.99 with the same class')
    if report.pixel_agreement is not None:
        lines.append(f'class map: {100 * report.pixel_agreement:.3f} % of pixels agree')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    try:
        from mmconvnext.deploy import DeployError, export_model  # needs requirements/deploy.txt
    except ImportError as error:
        sys.exit(f'tools/export.py: error: {error}; pip install -r requirements/deploy.txt')
    try:
        cfg = read_config(args.config, args.cfg_options)
        report = export_model(cfg, args.checkpoint, args.out, args.shape, args.dynamic,
                              args.fp16, args.logits, args.image)
    except (SetupError, DeployError) as error:
        sys.exit(f'tools/export.py: error: {error}')
    print(_format_report(report))


if __name__ == '__main__':
    main()

"""#params and FLOPs of a config's whole model, counted as the ConvNeXt paper counts them.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--targets TARGETS.md]
    python tools/analysis/get_flops.py --all [--targets TARGETS.md]

mmengine's counter on the tensor-mode forward, fvcore convention (one multiply-add = 1 FLOP);
detectors with box heads on 1000 RPN proposals and mask heads on 100 RoIs
(:func:`mmconvnext.analysis.measure_complexity`). Default input: one image of
:func:`mmconvnext.analysis.default_input_size` (detectors 1280x800 for COCO's test scale,
segmentors their test scale, e.g. 2048x512). ``--all`` measures every config directly in
``configs/``. ``--targets``: a markdown file whose tables have the config name in the first column
and ``#params`` (``48M``) and ``FLOPs`` (``262G``) columns; its figures and our deviation from
them are printed beside ours.
"""
import argparse
import re
import sys
import time
from pathlib import Path

from mmengine.config import DictAction

from mmconvnext.analysis import default_input_size, measure_complexity
from mmconvnext.engine.runner_setup import read_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs'
#: A reference figure in a targets table: number and unit, e.g. ``48M`` or ``1354G``.
FIGURE = re.compile(r'^([0-9]+(?:\.[0-9]+)?)\s*([MG])$')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', nargs='?', help='config file (mmdet or mmseg)')
    parser.add_argument('--all', action='store_true', help=f'every config in {CONFIG_DIR}')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: per config, see above)')
    parser.add_argument('--targets', help='markdown file with the reference #params / FLOPs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    args = parser.parse_args(argv)
    if args.all == bool(args.config):
        parser.error('give either CONFIG or --all')
    if args.shape and min(args.shape) <= 0:
        parser.error(f'--shape {args.shape[0]} {args.shape[1]}: sides must be positive')
    if args.targets and not Path(args.targets).is_file():
        parser.error(f'--targets {args.targets} does not exist')
    if args.config and not Path(args.config).is_file():
        parser.error(f'config file {args.config} does not exist')
    return args


def read_targets(path):
    """{config name: (#params in M, FLOPs in G)} from the markdown tables of ``path``.

    A table counts if its header has a ``#params`` and a ``FLOPs`` column; a row if its first
    cell is a name and both figures read like ``48M`` / ``262G``.
    """
    targets, columns = {}, None
    for line in Path(path).read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if not line.lstrip().startswith('|'):
            columns = None
        elif columns is None:  # a table's header
            if '#params' in cells and 'FLOPs' in cells:
                columns = cells.index('#params'), cells.index('FLOPs')
            else:
                columns = ()
        elif columns:
            figures = [FIGURE.match(cells[index]) for index in columns if index < len(cells)]
            if len(figures) == 2 and all(figures):
                targets[cells[0]] = tuple(float(figure[1]) for figure in figures)
    return targets


def table_header(with_targets):
    columns = ['config', 'input HxW', '#params (M)', 'FLOPs (G)']
    if with_targets:
        columns += ['target #params (M)', 'target FLOPs (G)', 'dev. #params', 'dev. FLOPs']
    return '\n'.join([f'| {" | ".join(columns)} |', '|' + '---|' * len(columns)])


def table_row(name, shape, params, flops, targets):
    """A markdown row; ``targets``: None (no target columns) or :func:`read_targets`'s dict."""
    cells = [name, f'{shape[0]}x{shape[1]}', f'{params / 1e6:.3f}', f'{flops / 1e9:.1f}']
    if targets is not None:
        if name in targets:
            target_params, target_flops = targets[name]
            cells += [f'{target_params:g}', f'{target_flops:g}',
                      f'{params / 1e6 / target_params - 1:+.1%}',
                      f'{flops / 1e9 / target_flops - 1:+.1%}']
        else:
            cells += ['-'] * 4
    return f'| {" | ".join(cells)} |'


def measure_config(path, shape, cfg_options):
    """((H, W), #params, FLOPs) of the config at ``path``, at ``shape`` (H, W) or its default."""
    cfg = read_config(path, cfg_options)  # checked to exist by parse_args
    if shape is None:
        try:
            width, height = default_input_size(cfg)
        except ValueError as error:
            sys.exit(f'tools/analysis/get_flops.py: error: {path}: {error}; give --shape H W')
        shape = (height, width)
    params, flops = measure_complexity(cfg, (shape[1], shape[0]))
    return shape, params, flops


def main(argv=None):
    args = parse_args(argv)
    targets = read_targets(args.targets) if args.targets else None
    paths = sorted(CONFIG_DIR.glob('*.py')) if args.all else [Path(args.config)]
    start = time.perf_counter()
    for index, path in enumerate(paths):
        shape, params, flops = measure_config(path, args.shape, args.cfg_options)
        if index == 0:  # after the first model is built: its warnings come before the table
            print(table_header(targets is not None), flush=True)
        print(table_row(path.stem, shape, params, flops, targets), flush=True)
    if args.all:
        print(f'{len(paths)} configs in {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()

"""Check a config's train and val datasets before a long run: every file and annotation that
would fail or is degenerate.

    python tools/check_dataset.py CONFIG [--workers N] [--decode] [--cfg-options KEY=VALUE ...]

Prints one line per problem (``FILE (image id / annotation id / dataset index): what``) and a
summary per dataset; exits 1 if it found any, 2 for a bad config or a missing data path. What is
checked: :mod:`mmconvnext.datasets.dataset_check`.
"""
import argparse
import os
import sys

from mmengine.config import DictAction

from mmconvnext.datasets.dataset_check import CHECKED_SPLITS, check_config_datasets
from mmconvnext.engine.runner_setup import SetupError, check_data_paths, read_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file (mmdet COCO-style or mmseg datasets)')
    parser.add_argument('--workers', type=int, default=len(os.sched_getaffinity(0)),
                        help='processes that check files (default: the CPU cores available)')
    parser.add_argument('--decode', action='store_true',
                        help='also decode every image (slower; finds corrupt data inside '
                        'complete files)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_dataloader.dataset.data_root=X')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = read_config(args.config, args.cfg_options)
        check_data_paths(cfg, CHECKED_SPLITS)
        reports = check_config_datasets(cfg, workers=args.workers, decode=args.decode)
    except SetupError as error:
        print(f'tools/check_dataset.py: error: {error}', file=sys.stderr)
        return 2
    for report in reports:
        for problem in report.problems:
            print(f'{report.where}: {problem}')
    for report in reports:
        print(report.summary())
    found = sum(len(report.problems) for report in reports)
    print(f'{found} problem{"" if found == 1 else "s"} found' if found else 'no problems found')
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())

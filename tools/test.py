"""Evaluate a checkpoint on an mmdet or mmseg config's test set (``default_scope`` decides).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl] [--show-dir DIR]
        [--tta] [--backend onnxruntime|openvino [--threads N] [--precision f32|bf16]]
        [--cfg-options KEY=VALUE ...]
        [--launcher none|pytorch|slurm]

The config's ``test_evaluator`` computes the metrics (COCO bbox / segm mAP with pycocotools;
mIoU / mAcc / aAcc); they are printed and saved to ``WORK_DIR/<timestamp>/<timestamp>.json``.
A progress bar counts the batches. Several processes: ``tools/dist_test.sh`` /
``tools/slurm_test.sh``.

``--backend``: CHECKPOINT is an ONNX file of ``tools/export.py``, run by that runtime on the
CPU in place of the PyTorch model, with the same test set, sliding window and metric
(:mod:`mmconvnext.deploy.deployed_model`; segmentors must be exported with ``--logits``).
``--precision bf16``: OpenVINO computes in bfloat16 (faster on CPUs with bfloat16 units).
"""
import argparse
import os.path as osp

import mmconvnext  # noqa: F401  (registries, checkpoint globals, CPU DDP wrapper)
from mmconvnext.engine.guard_hooks import add_custom_hook
from mmconvnext.engine.hooks import CheckpointLoadReportHook, MainProcessLoggerHook, ProgressBarHook
from mmconvnext.engine.runner_setup import (TEST_SPLITS, SetupError, add_common_args, build_runner,
                                            config_or_exit)

#: Metric that dumps the predictions for ``--out``, per default scope (mmengine's otherwise).
DUMP_METRICS = dict(mmdet='DumpDetResults')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(parser)
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump the predictions to this .pkl file')
    parser.add_argument('--show-dir', help='save the drawn predictions under DIR/vis_data')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation (the config's tta_model and tta_pipeline)")
    parser.add_argument('--backend', choices=['onnxruntime', 'openvino'],
                        help='CHECKPOINT is an exported ONNX file (tools/export.py), run by this '
                        'runtime')
    parser.add_argument('--threads', type=int,
                        help="--backend: the runtime's CPU threads (default: its own choice)")
    parser.add_argument('--precision', choices=['f32', 'bf16'], default='f32',
                        help='--backend openvino: compute in float32 (default) or bfloat16')
    return parser.parse_args()


def setup_testing(cfg, args):
    """Apply CHECKPOINT, ``--out``, ``--show-dir``, ``--tta``, the progress bar, the
    checkpoint's load report and one writer of the metrics file to ``cfg``."""
    if not osp.isfile(args.checkpoint):
        raise SetupError(f'checkpoint {args.checkpoint} does not exist')
    if args.backend:
        use_deployed_model(cfg, args)
    else:
        if args.checkpoint.endswith('.onnx'):
            raise SetupError(f'{args.checkpoint} is an ONNX file: give --backend onnxruntime or '
                             'openvino')
        if args.threads or args.precision != 'f32':
            raise SetupError('--threads and --precision are options of --backend')
        cfg.load_from = args.checkpoint
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SetupError(f'--out {args.out}: must end with .pkl or .pickle')
        evaluators = cfg.test_evaluator
        dump = dict(type=DUMP_METRICS.get(cfg.get('default_scope'), 'DumpResults'),
                    out_file_path=args.out)
        cfg.test_evaluator = [*(evaluators if isinstance(evaluators, list) else [evaluators]),
                              dump]
    if args.show_dir:  # every image: mmseg's hook would draw only every 50th batch
        cfg.default_hooks.visualization.update(draw=True, interval=1)
        cfg.visualizer.save_dir = args.show_dir
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise SetupError(f'--tta: {args.config} defines no tta_model / tta_pipeline')
        cfg.model = dict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    logger_hook = cfg.get('default_hooks', {}).get('logger')
    if logger_hook and logger_hook.type in ('LoggerHook', 'mmengine.LoggerHook'):
        logger_hook.type = f'mmconvnext.{MainProcessLoggerHook.__name__}'  # one metrics writer
    add_custom_hook(cfg, ProgressBarHook)
    if not args.backend:
        add_custom_hook(cfg, CheckpointLoadReportHook)


def use_deployed_model(cfg, args):
    """``cfg.model``: the exported file ``args.checkpoint`` run by ``args.backend``."""
    if args.tta:
        raise SetupError('--tta: test-time augmentation runs the PyTorch model only')
    if args.launcher != 'none':
        raise SetupError('--backend runs in one process (--launcher none)')
    try:
        from mmconvnext.deploy import DeployError, deployed_model_config
    except ImportError as error:
        raise SetupError(f'--backend: {error}; pip install -r requirements/deploy.txt')
    try:
        cfg.model = deployed_model_config(cfg, args.checkpoint, args.backend, args.threads,
                                          args.precision)
    except DeployError as error:
        raise SetupError(f'--backend {args.backend}: {error}') from error


def main():
    args = parse_args()
    cfg = config_or_exit(args, setup_testing, TEST_SPLITS, 'tools/test.py')
    build_runner(cfg).test()


if __name__ == '__main__':
    main()

"""The gloo set-up of ``mmconvnext.engine.cpu_distributed`` on 2 real torchrun processes.

The exit test holds the condition that rules out the intermittent SIGABRT after a finished
``dist_test.sh`` ("terminate called without an active exception"): when interpreter shutdown
begins, no gloo worker thread (``pt_gloo_runloop``) is left to take the GIL. A process dying of
an exception keeps them (no teardown that could wait on collectives in flight). Before the
teardown the workers are idle (with torch 2.11 a teardown that meets a worker still freeing
tensors deadlocked in 2 of 50 runs of these workers).
"""
import subprocess
import sys
import textwrap

from tiny_runs import TIMEOUT_S, free_port, tool_env

#: Run by each process (``worker.py OUT [raise]``): a DDP model kept alive only by a reference
#: cycle, as mmengine's Runner keeps it, one collective, then exit (or raise). Each rank reports
#: to ``OUT/rank<RANK>.log``. The first atexit handler registered runs last, after the one
#: ``prepare_cpu_distributed`` registers.
WORKER = textwrap.dedent('''
    import atexit
    import os
    import sys

    import torch
    import torch.distributed as dist
    from mmengine.config import Config

    from mmconvnext.engine.cpu_distributed import (prepare_cpu_distributed,
                                                   wait_for_idle_gloo_workers)


    def report(line):  # one file per rank: torchrun interleaves the ranks' stdout
        with open(f"{sys.argv[1]}/rank{os.environ['RANK']}.log", 'a') as log:
            log.write(line + '\\n')


    def gloo_workers():
        tasks = os.listdir('/proc/self/task')
        return sum(open(f'/proc/self/task/{task}/comm').read().startswith('pt_gloo')
                   for task in tasks)


    atexit.register(lambda: report(f'gloo workers at shutdown: {gloo_workers()}'))
    cfg = Config(dict(find_unused_parameters=True))
    prepare_cpu_distributed(cfg, 'pytorch')
    report(f'wrapper: {cfg.model_wrapper_cfg.type} {cfg.model_wrapper_cfg.find_unused_parameters}')


    class Runner:
        pass


    runner = Runner()
    runner.me = runner
    runner.model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 4))
    del runner
    gathered = [None, None]
    dist.all_gather_object(gathered, dict(rank=dist.get_rank(), values=torch.ones(16)))
    assert [item['rank'] for item in gathered] == [0, 1]
    report(f'gloo workers at the end of the script: {gloo_workers()}')
    report(f'gloo workers idle: {wait_for_idle_gloo_workers()}')
    if sys.argv[2:] == ['raise']:
        dist.barrier()  # both ranks have reported before either fails
        raise RuntimeError('failed on purpose')
''')


def run_workers(tmp_path, *args):
    """Run WORKER on 2 processes; the completed process and each rank's reported lines."""
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    run = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port()}', str(script), str(tmp_path), *args],
        env=tool_env(OMP_NUM_THREADS='1'), capture_output=True, text=True, timeout=TIMEOUT_S)
    reports = [(tmp_path / f'rank{rank}.log').read_text().splitlines() for rank in (0, 1)]
    for lines in reports:
        assert lines[0] == 'wrapper: CPUDistributedDataParallel True', run.stderr[-3000:]
        # the workers exist while the script runs (so the checks at shutdown are not vacuous)
        assert lines[1] == 'gloo workers at the end of the script: 2', run.stderr[-3000:]
        # they go idle once the last collective's tensors are freed (before the teardown)
        assert lines[2] == 'gloo workers idle: True', run.stderr[-3000:]
    return run, reports


def test_gloo_workers_are_joined_before_interpreter_shutdown(tmp_path):
    run, reports = run_workers(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [lines[3:] for lines in reports] == [['gloo workers at shutdown: 0']] * 2


def test_a_process_dying_of_an_exception_skips_the_teardown(tmp_path):
    run, reports = run_workers(tmp_path, 'raise')
    assert run.returncode != 0 and 'failed on purpose' in run.stderr
    # torchrun may stop the other rank once one has failed, before its atexit handlers run
    assert ['gloo workers at shutdown: 2'] in [lines[3:] for lines in reports]

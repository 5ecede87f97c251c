"""``tools/sbatch_train.sh`` and ``tools/slurm_train.sh`` on a real single-node Slurm.

The module starts its own munged, slurmctld and slurmd (Debian's ``slurm-wlm`` 22.05, as root:
``.ci/run`` installs them) with a configuration of its own in a temporary folder, and stops them
at the end; without root or Slurm the tests skip, saying why. Each job trains the 2-process run
of ``mask_rcnn_reference`` (2 tasks, gloo) and must end with its weights, bit for bit.
"""
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
from tiny_runs import TIMEOUT_S, TOOLS_DIR, free_port, run_tool, state_dicts_differ, tool_env

DAEMONS = ('munged', 'slurmctld', 'slurmd')
#: Where Debian puts the daemons (not in a user's PATH).
SBIN = '/usr/sbin'
#: The states of a job that has ended.
FINAL_STATES = ('COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY')


def slurm_conf(root, host, ports):
    """A single-node ``slurm.conf`` for ``host`` (2 CPUs), its state under ``root``."""
    return '\n'.join([
        'ClusterName=mmconvnext-test', f'SlurmctldHost={host}', 'SlurmUser=root',
        'SlurmdUser=root', 'AuthType=auth/munge', f'AuthInfo=socket={root}/munge.socket',
        'CredType=cred/munge', f'StateSaveLocation={root}/state', f'SlurmdSpoolDir={root}/spool',
        f'SlurmctldPidFile={root}/slurmctld.pid', f'SlurmdPidFile={root}/slurmd.pid',
        f'SlurmctldLogFile={root}/slurmctld.log', f'SlurmdLogFile={root}/slurmd.log',
        f'SlurmctldPort={ports[0]}', f'SlurmdPort={ports[1]}',
        'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none', 'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_CPU', 'ReturnToService=2', 'MpiDefault=none', 'JobRequeue=1',
        f'NodeName={host} CPUs=2 State=UNKNOWN',
        f'PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP', ''])


def wait_for(condition, what, timeout_s=TIMEOUT_S, describe=str):
    """Poll ``condition()`` until it is true; fail naming ``what`` and ``describe()`` after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}\n{describe()}'
        time.sleep(0.25)


@pytest.fixture(scope='module')
def slurm(tmp_path_factory):
    """The environment of Slurm's commands (``SLURM_CONF``) on a single-node cluster that the
    fixture starts and stops."""
    if os.geteuid() != 0:
        pytest.skip('a single-node Slurm needs root (CI runs as root)')
    missing = [name for name in DAEMONS if not os.path.exists(f'{SBIN}/{name}')]
    if missing or shutil.which('sbatch') is None:
        pytest.skip(f'slurm-wlm and munge are not installed (missing {missing or "sbatch"}; '
                    '.ci/run installs them with apt-get)')
    root = tmp_path_factory.mktemp('slurm')
    for folder in ('state', 'spool'):
        (root / folder).mkdir()
    key = root / 'munge.key'
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / 'slurm.conf'
    conf.write_text(slurm_conf(root, socket.gethostname().split('.')[0],
                               (free_port(), free_port())))
    env = {**os.environ, 'SLURM_CONF': str(conf)}
    subprocess.run([f'{SBIN}/munged', '--force', f'--socket={root}/munge.socket',
                    f'--key-file={key}', f'--log-file={root}/munged.log',
                    f'--pid-file={root}/munged.pid', f'--seed-file={root}/munged.seed'],
                   check=True)
    try:
        for daemon in ('slurmctld', 'slurmd'):
            subprocess.run([f'{SBIN}/{daemon}'], env=env, check=True)
        wait_for(lambda: sinfo_state(env) == 'idle', 'the node to be idle', timeout_s=60)
        yield env
    finally:
        subprocess.run(['scancel', '--user=root'], env=env)
        subprocess.run(['scontrol', 'shutdown'], env=env)
        subprocess.run([f'{SBIN}/munged', '--stop', f'--socket={root}/munge.socket'])


def sinfo_state(env):
    """The node's state (idle, allocated, ...), by ``sinfo``."""
    return subprocess.run(['sinfo', '-h', '-o', '%T'], env=env, capture_output=True,
                          text=True).stdout.strip()


def show_job(env, job):
    """``scontrol show job JOB``."""
    return subprocess.run(['scontrol', 'show', 'job', job], env=env, capture_output=True,
                          text=True).stdout


def job_field(env, job, field):
    """``field`` of :func:`show_job` (e.g. JobState, Restarts)."""
    match = re.search(rf'\b{field}=(\S+)', show_job(env, job))
    return match.group(1) if match else None


def test_a_job_signalled_mid_epoch_requeues_itself_and_ends_with_the_same_weights(
        slurm, mask_rcnn_reference, tmp_path):
    """USR1 (Slurm's warning ahead of the time limit) once epoch 1 is under way: the ranks stop at
    one iteration with preempted.pth, the first task requeues the job, and its second start
    resumes at the next batch and finishes."""
    work_dir, log = tmp_path / 'work_dir', tmp_path / 'job.out'
    env = {**tool_env(), **slurm, 'MASTER_PORT': str(free_port())}
    job = subprocess.run(
        ['sbatch', '--parsable', '--ntasks=2', '--cpus-per-task=1', f'--output={log}',
         str(TOOLS_DIR / 'sbatch_train.sh'), str(mask_rcnn_reference.config), str(work_dir)],
        env=env, cwd=TOOLS_DIR.parent, capture_output=True, text=True, check=True).stdout.strip()
    started = re.compile(r'Epoch\(train\) +\[1\]\[2/4\]')

    def describe():
        return show_job(env, job) + (log.read_text()[-3000:] if log.exists() else 'no log')

    wait_for(lambda: log.exists() and started.search(log.read_text()), 'epoch 1, iteration 2',
             describe=describe)
    subprocess.run(['scancel', '--signal=USR1', job], env=env, check=True)
    wait_for(lambda: (job_field(env, job, 'Restarts'), job_field(env, job, 'JobState')) == (
        '1', 'PENDING'), 'the job to be requeued', describe=describe)
    # Slurm holds a requeued batch job back for 2 minutes; the test does not wait that long, but
    # the node must have ended the first start, and a new start in the second of the requeue
    # would be refused ("Job credential revoked": the revocation has 1 s resolution)
    wait_for(lambda: sinfo_state(env) == 'idle', 'the node to be idle', describe=describe)
    time.sleep(1.5)
    subprocess.run(['scontrol', 'update', f'JobId={job}', 'StartTime=now'], env=env, check=True)
    wait_for(lambda: job_field(env, job, 'JobState') in FINAL_STATES, 'the job to end',
             describe=describe)

    out = log.read_text()
    assert job_field(env, job, 'JobState') == 'COMPLETED', describe()
    assert re.search(r'SIGUSR1: stopping after iteration [234] \(epoch 1\)', out)
    assert out.count('tools/train.py: preempted: SIGUSR1 received') == 2  # both tasks
    assert f'requeueing Slurm job {job}: it resumes from the checkpoint' in out
    assert re.search(r'resuming epoch 1 at batch [345] of 4', out)
    assert state_dicts_differ(work_dir / 'iter_8.pth',
                              mask_rcnn_reference.work_dir / 'iter_8.pth') == []


def test_slurm_train_passes_over_a_truncated_newest_checkpoint(slurm, mask_rcnn_reference,
                                                               tmp_path):
    """``slurm_train.sh ... --resume`` in a work dir whose newest checkpoint (iteration 6) a copy
    cut in half: it goes on from iteration 4, the last of epoch 1 (saved before the epoch's end
    hooks ran), and ends with the same weights."""
    work_dir, reference = tmp_path / 'work_dir', mask_rcnn_reference.work_dir
    work_dir.mkdir()
    shutil.copy(reference / 'iter_4.pth', work_dir)
    truncated = work_dir / 'iter_6.pth'
    whole = (reference / 'iter_6.pth').read_bytes()
    truncated.write_bytes(whole[:len(whole) // 2])
    (work_dir / 'last_checkpoint').write_text(str(truncated))

    env = {**tool_env(GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1', GRES=''), **slurm,
           'MASTER_PORT': str(free_port())}
    out = run_tool('slurm_train.sh', 'debug', 'truncated', mask_rcnn_reference.config, work_dir,
                   '--resume', env=env).stdout

    assert f'--resume passes over {truncated}: unreadable, truncated or not a checkpoint' in out
    assert 'resuming epoch 1 after its last batch, at its end (epoch hooks, validation)' in out
    assert state_dicts_differ(work_dir / 'iter_8.pth', reference / 'iter_8.pth') == []

#!/usr/bin/env bash
# A Slurm batch job that trains through time limits and preemptions. From the mmconvnext folder:
#   sbatch -p PARTITION --ntasks=8 --ntasks-per-node=8 --gres=gpu:8 --cpus-per-task=5 \
#       [--time=...] tools/sbatch_train.sh CONFIG WORK_DIR [tools/train.py args]
# Slurm sends USR1 120 s before the time limit (--signal below) and SIGTERM when it preempts the
# job: the ranks stop at one iteration and write WORK_DIR/preempted.pth, then the first task
# requeues the job (train.py --requeue). Each start resumes from the newest usable checkpoint.
# Environment: PYTHON (python), MASTER_PORT (29500), OMP_NUM_THREADS (--cpus-per-task).
#SBATCH --signal=USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: sbatch [options] $0 CONFIG WORK_DIR [tools/train.py args]" >&2
    exit 2
fi
# sbatch runs a copy of this file: the tools are found from the folder it was submitted in
TOOLS_DIR=${SLURM_SUBMIT_DIR:-$PWD}/tools
if [ ! -f "$TOOLS_DIR/train.py" ]; then
    echo "sbatch_train.sh: no $TOOLS_DIR/train.py; submit from the mmconvnext folder" >&2
    exit 2
fi
CONFIG=$1
WORK_DIR=$2
shift 2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
export PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}"
# a SIGTERM to this script (preemption) waits for the ranks, which get it too and save
trap 'echo "sbatch_train.sh: SIGTERM, the ranks stop at their next iteration"' TERM
srun --kill-on-bad-exit=1 "${PYTHON:-python}" -u "$TOOLS_DIR/train.py" "$CONFIG" \
    --work-dir="$WORK_DIR" --resume --requeue --launcher slurm "$@"

#!/usr/bin/env bash
# Shared by slurm_train.sh / slurm_test.sh: run tools/SCRIPT as GPUS srun tasks, launcher slurm.
#   slurm_launch.sh PARTITION JOB_NAME SCRIPT [SCRIPT ARGS...]
# Environment: GPUS (8 tasks in all), GPUS_PER_NODE (8 tasks per node), CPUS_PER_TASK (5, also
# the OMP_NUM_THREADS of each task), GRES (gpu:GPUS_PER_NODE; set it empty on CPU-only nodes),
# SRUN_ARGS (extra srun options), PYTHON (python), MASTER_PORT (29500).
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
shift 3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:$GPUS_PER_NODE}
SRUN_ARGS=${SRUN_ARGS:-}
TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CPUS_PER_TASK}
export PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}"
# SRUN_ARGS is split into words on purpose (several srun options).
# shellcheck disable=SC2086
exec srun -p "$PARTITION" --job-name="$JOB_NAME" ${GRES:+--gres="$GRES"} \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 $SRUN_ARGS \
    "${PYTHON:-python}" -u "$TOOLS_DIR/$SCRIPT" "$@" --launcher slurm

#!/usr/bin/env bash
# Evaluate a checkpoint with srun on a Slurm partition:
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py args]
# (see slurm_launch.sh for all variables).
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py args]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
exec "$(dirname "${BASH_SOURCE[0]}")/slurm_launch.sh" "$PARTITION" "$JOB_NAME" test.py \
    "$CONFIG" "$CHECKPOINT" "$@"

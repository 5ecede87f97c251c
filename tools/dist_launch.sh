#!/usr/bin/env bash
# Shared by dist_train.sh / dist_test.sh: run tools/SCRIPT on NPROC processes of this node with
# torchrun, launcher pytorch.   dist_launch.sh NPROC SCRIPT [SCRIPT ARGS...]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON (python),
# OMP_NUM_THREADS / MKL_NUM_THREADS (default: this node's cores / NPROC, at least 1).
set -euo pipefail
NPROC=$1
SCRIPT=$2
shift 2
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
    echo "GPUS must be a positive number of processes per node, got '$NPROC'" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29500}
TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# torchrun (and mmengine) would set 1 thread per process; share the cores instead.
THREADS=$(( $(nproc) / NPROC ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( THREADS > 0 ? THREADS : 1 ))}
export MKL_NUM_THREADS=${MKL_NUM_THREADS:-$OMP_NUM_THREADS}
export PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" --nproc_per_node="$NPROC" \
    "$TOOLS_DIR/$SCRIPT" "$@" --launcher pytorch

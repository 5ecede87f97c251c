#!/usr/bin/env bash
# Shared by dist_train.sh / dist_test.sh: run tools/SCRIPT on NPROC processes of this node with
# torchrun, launcher pytorch.   dist_launch.sh NPROC SCRIPT [SCRIPT ARGS...]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON (python),
# MAX_RESTARTS (0; N: torchrun restarts all processes up to N times after one fails, and each
# start of train.py resumes from the newest usable checkpoint),
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
RENDEZVOUS=(--master_addr="$MASTER_ADDR" --master_port="$PORT")
if [ "${MAX_RESTARTS:-0}" != 0 ]; then
    # a restart re-runs the rendezvous: with the static one (and c10d's shared store), the new
    # processes read the dead ones' addresses from the store and cannot connect (gloo, torch 2.14)
    RENDEZVOUS=(--rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$PORT"
                --max-restarts="$MAX_RESTARTS")
    export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
fi
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$NPROC" "${RENDEZVOUS[@]}" \
    "$TOOLS_DIR/$SCRIPT" "$@" --launcher pytorch

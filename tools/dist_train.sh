#!/usr/bin/env bash
# Train on GPUS processes per node (torchrun; gloo on CPU when there is no GPU):
#   tools/dist_train.sh CONFIG GPUS [tools/train.py args]
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR, PORT (see dist_launch.sh).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [tools/train.py args]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
exec "$(dirname "${BASH_SOURCE[0]}")/dist_launch.sh" "$GPUS" train.py "$CONFIG" "$@"

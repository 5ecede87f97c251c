#!/usr/bin/env bash
# Evaluate CHECKPOINT on GPUS processes per node (torchrun; gloo on CPU when there is no GPU):
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py args]
# Multi-node: run on every node with NNODES, NODE_RANK, MASTER_ADDR, PORT (see dist_launch.sh).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [tools/test.py args]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
exec "$(dirname "${BASH_SOURCE[0]}")/dist_launch.sh" "$GPUS" test.py "$CONFIG" "$CHECKPOINT" "$@"

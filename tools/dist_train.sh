#!/usr/bin/env bash
# Distributed training with torchrun, one process per GPU (or per CPU slot).
#
#   bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options...]
#
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT.
# Interpreter: $PYTHON, else the one find_python.sh finds.
# Without CUDA the processes train on CPU with the gloo backend.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG NUM_PROCS [train.py options...]" >&2
    exit 2
fi
CONFIG=$1
NPROCS=$2
tools="$(cd "$(dirname "$0")" && pwd)"
source "$tools/find_python.sh"
PYTHONPATH="$tools/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"

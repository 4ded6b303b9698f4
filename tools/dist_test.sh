#!/usr/bin/env bash
# Distributed testing with torchrun.
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options...]
#
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT.
# Interpreter: $PYTHON, else the one find_python.sh finds.
set -euo pipefail
if [[ $# -lt 3 ]]; then
    echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS [test.py options...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
tools="$(cd "$(dirname "$0")" && pwd)"
source "$tools/find_python.sh"
PYTHONPATH="$tools/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"

#!/usr/bin/env bash
# Distributed training with torchrun, one process per GPU (or per CPU slot).
#
#   bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options...]
#
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT.
# Interpreter: $PYTHON, else the one find_python.sh finds.
# Without CUDA the processes train on CPU with the gloo backend.
#
# Pre-emption: torchrun forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT and (set
# here) SIGUSR1/SIGUSR2 to every training process and waits for them
# (TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds, default 30, then SIGKILL). On
# SIGTERM, or a signal named with --preempt-signal, the processes finish the
# iteration and save one checkpoint. torchrun itself reports the signal with
# status 1, so this script forwards the signals to torchrun and, when rank 0
# reports a pre-emption checkpoint (in the file $MMDRN_PREEMPTED_MARKER),
# exits with 75 itself, the status to requeue on. Resume with --resume.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG NUM_PROCS [train.py options...]" >&2
    exit 2
fi
CONFIG=$1
NPROCS=$2
tools="$(cd "$(dirname "$0")" && pwd)"
source "$tools/find_python.sh"
export PET_SIGNALS_TO_HANDLE="${PET_SIGNALS_TO_HANDLE:-SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2}"
marker=$(mktemp "${TMPDIR:-/tmp}/mmdrn-preempted.XXXXXX")
rm -f "$marker"
trap 'rm -f "$marker"' EXIT
export MMDRN_PREEMPTED_MARKER="$marker"
PYTHONPATH="$tools/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$tools/train.py" "$CONFIG" --launcher pytorch "${@:3}" &
launcher=$!
for sig in TERM INT HUP QUIT USR1 USR2; do
    trap "kill -s $sig $launcher 2>/dev/null || true" "$sig"
done
# A trapped signal interrupts `wait`; wait again until torchrun has ended.
status=0
wait "$launcher" || status=$?
while kill -0 "$launcher" 2>/dev/null; do
    status=0
    wait "$launcher" || status=$?
done
if [[ -s "$marker" ]]; then
    echo "dist_train.sh: pre-empted; checkpoint $(cat "$marker"); exit status 75" >&2
    exit 75
fi
exit "$status"

#!/usr/bin/env bash
# Training on a slurm cluster: one srun task per GPU.
#
#   GPUS=16 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options...]
#
# GPUS (total, default 4), GPUS_PER_NODE (default 4; CPU-only nodes: run
# tools/dist_train.sh in the allocation instead, mmengine's slurm setup needs GPUs),
# CPUS_PER_TASK (default 5), SRUN_ARGS (extra srun arguments),
# PYTHON (else the interpreter find_python.sh finds).
#
# Pre-emption: slurm sends SIGTERM to every task before it kills a job (time
# limit, scancel, pre-emption; KillWait seconds ahead), or a chosen signal
# earlier with --signal. Each task finishes the iteration, one checkpoint is
# saved, and every task exits with status 75, which srun returns. In a batch
# script, to be warned 120 s ahead and requeued:
#
#   #SBATCH --signal=USR1@120 --requeue
#   bash tools/slurm_train.sh PART NAME CONFIG --resume --preempt-signal USR1
#   if [[ $? -eq 75 ]]; then scontrol requeue "$SLURM_JOB_ID"; fi
#
# (For an interactive srun, pass the option as SRUN_ARGS="--signal=USR1@120".)
set -euo pipefail
if [[ $# -lt 3 ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [train.py options...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
gres=()
if [[ "$GPUS_PER_NODE" -gt 0 ]]; then gres=(--gres="gpu:$GPUS_PER_NODE"); fi
tools="$(cd "$(dirname "$0")" && pwd)"
source "$tools/find_python.sh"
# SRUN_ARGS is split into words on purpose: it holds several arguments.
# shellcheck disable=SC2086
PYTHONPATH="$tools/..${PYTHONPATH:+:$PYTHONPATH}" \
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${gres[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$(( GPUS_PER_NODE > 0 ? GPUS_PER_NODE : GPUS ))" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "$PYTHON" -u "$tools/train.py" "$CONFIG" --launcher slurm "${@:4}"

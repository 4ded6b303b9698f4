# Sourced by the dist_*/slurm_* launchers: sets PYTHON, the interpreter to run.
#
# An explicit $PYTHON wins; otherwise `python` on PATH when it imports torch;
# otherwise the environment scripts/install.sh creates in the checkout
# (./.venv), so the launchers work right after `make demo` / `make test`
# without activating it.
if [[ -z "${PYTHON:-}" ]]; then
    _mmdrn_venv="$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/python"
    if command -v python >/dev/null 2>&1 && python -c 'import torch' 2>/dev/null; then
        PYTHON=python
    elif [[ -x "$_mmdrn_venv" ]]; then
        PYTHON="$(cd "$(dirname "$_mmdrn_venv")" && pwd)/python"
    else
        echo "no python with torch found: activate the environment that has mmdrn" \
             "(bash scripts/install.sh creates ./.venv) or set PYTHON" >&2
        exit 1
    fi
    unset _mmdrn_venv
fi

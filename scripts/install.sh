#!/usr/bin/env bash
# Install mmdrn with its full OpenMMLab + timm stack into a virtual environment:
# the exact versions of requirements/stack.txt, and mmdrn itself in editable
# mode with its `openmmlab`, `tests` and `deploy` extras
# (`pip install -e .[openmmlab,tests,deploy]`; `deploy`: ONNX, ONNX Runtime,
# OpenVINO, about 94 MB of wheels, 9 s to install on top of the stack).
#
#   bash scripts/install.sh            # creates/uses ./.venv
#   VENV=/path/to/env bash scripts/install.sh
#   (or activate any venv/conda env first: the active one is used)
#
# Versions come from requirements/stack.txt. mmcv has no wheel for current
# PyTorch on PyPI, so its source is built with compiled ops (CUDA ops when
# torch sees a GPU, CPU ops otherwise) and the wheel is cached in
# $MMDRN_WHEEL_CACHE (default ~/.cache/mmdrn/wheels): later installs take
# seconds. A working mmcv that is already installed is left alone.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack="$root/requirements/stack.txt"
cache="${MMDRN_WHEEL_CACHE:-$HOME/.cache/mmdrn/wheels}"
start=$SECONDS

log() { printf '[mmdrn install] %s\n' "$*"; }
pin() { grep -E "^$1==" "$stack" | head -n 1 | sed 's/[[:space:]]*#.*//'; }

# --- the environment -------------------------------------------------------
if [[ -n "${VENV:-}" ]]; then
    env_dir="$VENV"
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
    env_dir="$VIRTUAL_ENV"
elif [[ -n "${CONDA_PREFIX:-}" ]]; then
    env_dir="$CONDA_PREFIX"
else
    env_dir="$root/.venv"
fi
if [[ ! -x "$env_dir/bin/python" ]]; then
    log "creating virtual environment $env_dir"
    "${PYTHON:-python3}" -m venv "$env_dir"
fi
py="$env_dir/bin/python"
pip=("$py" -m pip --disable-pip-version-check)
log "using $("$py" --version) in $env_dir"

# Nothing to do when this environment was installed from the same pins and
# the stack still imports (the stamp is written at the end of a full run).
stamp="$env_dir/.mmdrn-install-stamp"
fingerprint=$(cat "$root"/requirements/*.txt "$root/setup.py" \
              | sha256sum | cut -d' ' -f1)
stack_imports='import mmcv.ops, mmseg.models, mmpretrain.models, timm, mmdrn, mmdrn.openmmlab'
if [[ -f "$stamp" && "$(cat "$stamp")" == "$fingerprint:$root" ]] \
   && "$py" -c "$stack_imports" 2>/dev/null; then
    log "already installed from these pins: nothing to do ($((SECONDS - start)) s)"
    exit 0
fi

# mmcv's setup.py and openmim import pkg_resources, which setuptools 81
# removed; 77 is the first to read the SPDX license field mmdrn declares.
setuptools_range='setuptools>=77,<81'
"${pip[@]}" install -q --upgrade pip "$setuptools_range" wheel ninja

# --- torch -----------------------------------------------------------------
have_torch=$("$py" -c 'import torch, torchvision; print(torch.__version__)' 2>/dev/null || true)
if [[ -n "$have_torch" ]]; then
    log "torch $have_torch already installed: keeping it"
else
    log "installing $(pin torch) $(pin torchvision)"
    "${pip[@]}" install -q "$(pin torch)" "$(pin torchvision)"
fi

# --- mmcv with compiled ops ------------------------------------------------
mmcv_ok() {
    "$py" - <<'EOF' 2>/dev/null
import mmcv
from packaging.version import Version
assert Version('2.0.0rc4') <= Version(mmcv.__version__) < Version('2.2.0')
import mmcv.ops  # noqa: F401  (fails without the compiled extension)
from mmcv import _ext  # noqa: F401
EOF
}
if mmcv_ok; then
    log "a working mmcv with ops is installed: leaving it alone"
else
    mmcv_version=$(pin mmcv | cut -d= -f3)
    # The wheel depends on python, torch and whether CUDA ops were compiled.
    read -r tag device cxx < <("$py" - <<'EOF'
import sys, torch
cuda = torch.cuda.is_available()
tag = 'py{}{}-torch{}-{}'.format(
    sys.version_info.major, sys.version_info.minor,
    torch.__version__.split('+')[0],
    'cu' + torch.version.cuda.replace('.', '') if cuda else 'cpu')
# The C++ standard torch builds its own extensions with (17 up to torch 2.9,
# 20 after): read it off torch.utils.cpp_extension rather than guess.
import inspect, re
from torch.utils import cpp_extension
std = max(int(v) for v in re.findall(r'-std=c\+\+(\d\d)',
                                     inspect.getsource(cpp_extension)))
print(tag, 'cuda' if cuda else 'cpu', std)
EOF
)
    wheel_dir="$cache/mmcv-$mmcv_version-$tag"
    wheel=$(ls "$wheel_dir"/mmcv-"$mmcv_version"-*.whl 2>/dev/null | head -n 1 || true)
    if [[ -n "$wheel" ]]; then
        log "reusing cached $wheel"
    else
        log "building mmcv $mmcv_version with $device ops (C++$cxx); this takes" \
            "about 15 minutes on 2 cores, once"
        build=$(mktemp -d)
        trap 'rm -rf "$build"' EXIT
        "${pip[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
            "mmcv==$mmcv_version" -d "$build"
        tar -xzf "$build"/mmcv-"$mmcv_version".tar.gz -C "$build"
        src="$build/mmcv-$mmcv_version"
        sed -i "s/-std=c++17/-std=c++$cxx/g" "$src/setup.py"
        export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
        if [[ "$device" == cuda ]]; then export FORCE_CUDA=1; fi
        mkdir -p "$wheel_dir"
        "${pip[@]}" wheel -q --no-build-isolation --no-deps "$src" \
            -w "$build/wheel"
        mv "$build"/wheel/mmcv-*.whl "$wheel_dir"/
        wheel=$(ls "$wheel_dir"/mmcv-"$mmcv_version"-*.whl | head -n 1)
        log "cached $wheel"
    fi
    "${pip[@]}" install -q --no-deps "$wheel"
    # mmcv's own runtime requirements (addict, yapf, opencv, ...)
    "${pip[@]}" install -q addict numpy packaging Pillow pyyaml yapf opencv-python
fi

# --- the OpenMMLab stack, timm and mmdrn itself -----------------------------
# setup.py declares ranges; the pins of stack.txt hold them to the tested
# versions. torch, torchvision and mmcv are left out of the constraints: they
# were settled above (an existing torch or a working mmcv is kept).
log "installing mmdrn[openmmlab,tests,deploy] with the pinned stack"
constraints=$(mktemp)
grep -vE '^(torch|torchvision|mmcv)==' "$stack" > "$constraints"
"${pip[@]}" install -q -e "$root[openmmlab,tests,deploy]" -c "$constraints"
rm -f "$constraints"
# A dependency pinning an old setuptools (openmim's dataset downloader did in
# some releases) must not take pkg_resources' fixes away again.
"${pip[@]}" install -q "$setuptools_range"
"$py" -c "$stack_imports"
"$py" - <<'EOF'
import mmcv, mmengine, mmseg, mmpretrain, torch, timm
print('[mmdrn install] ok: torch', torch.__version__, '| mmcv', mmcv.__version__,
      '| mmengine', mmengine.__version__, '| mmseg', mmseg.__version__,
      '| mmpretrain', mmpretrain.__version__, '| timm', timm.__version__)
EOF
echo "$fingerprint:$root" > "$stamp"
log "done in $((SECONDS - start)) s"

"""The OpenMMLab layer of mmdrn: registrations and mmengine integration.

``import mmdrn.openmmlab`` (or ``custom_imports=dict(imports=['mmdrn'])`` in a
config, which imports it once mmengine is loaded) registers the backbones
``DRN_A`` ... ``DRN_D``, the necks ``ASPPNeck`` and ``ContextNeck``, the heads
``CAMHead`` / ``CAMSegHead``, the ``ImageNetLocMetric``, ``DRNDemoDataset``,
``FixedCrop``, the data checks ``CheckedDataset`` / ``CheckSegLabels``, the
``NaNGuardHook``, the ``PreemptionHook`` and the ``CPUAmpOptimWrapper`` into
whichever of MMSegmentation and mmpretrain is installed, and the ``drn://``
checkpoint scheme (:mod:`.pretrained`): ``init_cfg=dict(type='Pretrained',
checkpoint='drn://drn_c_26')`` loads the published ImageNet weights.

It also changes three things for the whole process, each switched off by
setting its environment variable to ``0`` before the import, and each undone
by the function named:

* ``MMDRN_MMENGINE_ALLOWLIST``: mmengine's own checkpoints (numpy arrays,
  ``HistoryBuffer``) load with ``weights_only=True``, by adding exactly those
  objects to torch's allow-list
  (:func:`~.mmengine_compat.allow_mmengine_checkpoints`; undo:
  :func:`~.mmengine_compat.disallow_mmengine_checkpoints`).
* ``MMDRN_SAFE_LOAD``: every local checkpoint mmengine reads (``load_from``,
  ``resume``, ``init_cfg=dict(type='Pretrained')``) goes through
  :func:`mmdrn.utils.load_file`, which never runs pickled code and names
  what is wrong with a bad file
  (:func:`~.mmengine_compat.register_mmengine_loader`; undo:
  :func:`~.mmengine_compat.unregister_mmengine_loader`).
* ``MMDRN_ATOMIC_CHECKPOINTS``: mmengine writes local files atomically
  (temporary file + rename), so a job killed while saving never leaves a
  truncated checkpoint (:func:`~.engine.enable_atomic_checkpoints`; undo:
  :func:`~.engine.disable_atomic_checkpoints`).
"""

import os

# First, so that a missing codebase is reported as such.
from .registry import SCOPES  # isort: split

from . import backbones, datasets, engine, evaluation, heads, necks  # noqa: F401
from .engine import disable_atomic_checkpoints, enable_atomic_checkpoints
from .mmengine_compat import (
    allow_mmengine_checkpoints,
    disallow_mmengine_checkpoints,
    register_mmengine_loader,
    unregister_mmengine_loader,
)
from .pretrained import register_drn_scheme

__all__ = [
    'PROCESS_WIDE_CHANGES',
    'SCOPES',
    'allow_mmengine_checkpoints',
    'disable_atomic_checkpoints',
    'disallow_mmengine_checkpoints',
    'enable_atomic_checkpoints',
    'register_drn_scheme',
    'register_mmengine_loader',
    'unregister_mmengine_loader',
]

# environment variable -> (apply, undo)
PROCESS_WIDE_CHANGES = {
    'MMDRN_MMENGINE_ALLOWLIST': (
        allow_mmengine_checkpoints,
        disallow_mmengine_checkpoints,
    ),
    'MMDRN_SAFE_LOAD': (register_mmengine_loader, unregister_mmengine_loader),
    'MMDRN_ATOMIC_CHECKPOINTS': (
        enable_atomic_checkpoints,
        disable_atomic_checkpoints,
    ),
}


def _enabled(variable: str) -> bool:
    value = os.environ.get(variable, '1').strip()
    if value not in ('0', '1'):
        raise ValueError(
            f"{variable} must be '0' (off) or '1' (on, the default), got {value!r}"
        )
    return value == '1'


for _variable, (_apply, _undo) in PROCESS_WIDE_CHANGES.items():
    if _enabled(_variable):
        _apply()

register_drn_scheme()

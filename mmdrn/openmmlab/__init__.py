"""The OpenMMLab layer of mmdrn: registrations, and nothing else at import.

``import mmdrn.openmmlab`` (a config's
``custom_imports=dict(imports=['mmdrn.openmmlab'])``) registers into whichever
of MMSegmentation and mmpretrain is installed: the backbones ``DRN_A`` ...
``DRN_D``, the necks ``ASPPNeck`` and ``ContextNeck``, the heads ``CAMHead``,
``CAMSegHead`` and ``ContextHead``, the ``ImageNetLocMetric``, the
``DRNDemoDataset``, ``FixedCrop``, the data checks ``CheckedDataset`` /
``CheckSegLabels``, the hooks ``CheckpointCompatHook``, ``NaNGuardHook``,
``PreemptionHook`` and ``RNGStateHook``, and the ``CPUAmpOptimWrapper``; and
the ``drn://`` checkpoint scheme (:mod:`.pretrained`), as mmengine registers
``torchvision://``.

It changes nothing else in the process: the changes to mmengine's
checkpoint handling are chosen in a config (:mod:`.compat`).
"""

# First, so that a missing codebase is reported as such.
from .registry import SCOPES  # isort: split

from . import (  # noqa: F401
    backbones,
    compat,
    datasets,
    evaluation,
    heads,
    hooks,
    necks,
    optim_wrapper,
)
from .pretrained import register_drn_scheme

__all__ = ['SCOPES']

register_drn_scheme()

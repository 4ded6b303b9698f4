"""mmdrn datasets: the embedded demo's procedurally drawn scenes.

The registered ``DRNDemoDataset`` and ``FixedCrop`` are in
:mod:`mmdrn.openmmlab.datasets`.
"""

from .demo_scenes import CLASSES, PALETTE, draw_scene, generate_demo_scenes

__all__ = ['CLASSES', 'PALETTE', 'draw_scene', 'generate_demo_scenes']

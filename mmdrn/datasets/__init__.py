"""mmdrn datasets: the embedded demo's procedurally drawn scenes."""

from .demo_scenes import CLASSES, PALETTE, draw_scene, generate_demo_scenes
from .drn_demo import DRNDemoDataset
from .transforms import FixedCrop  # noqa: F401  (registers the transform)

__all__ = ['CLASSES', 'PALETTE', 'DRNDemoDataset', 'draw_scene', 'generate_demo_scenes']

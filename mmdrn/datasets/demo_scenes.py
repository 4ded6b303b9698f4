"""Procedurally drawn street scenes: the data of mmdrn's embedded demo.

Every scene is drawn from a seeded random generator, so the same arguments
always give byte-identical files and nothing has to be downloaded. A scene
has textured stuff classes (sky with clouds, ground with lane markings,
buildings with windows), mid-sized things (vehicles) and the thin and small
objects dilated networks are meant to keep (1-3 px poles, 1-2 px wires,
small signs). Colours of instances are drawn from overlapping ranges, so
shape, texture and context matter, not colour alone.

The files are written in the layout of an MMSegmentation dataset::

    root/
        img_dir/{train,val}/scene_00000.png   # RGB images
        ann_dir/{train,val}/scene_00000.png   # class index per pixel
        meta.json                             # the generation arguments

The scenes are drawn with numpy and Pillow; the MMSegmentation dataset class
lives in :mod:`mmdrn.openmmlab.datasets`.
"""

import json
import os
import shutil
import tempfile
from typing import Dict, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..utils.validation import check_int

__all__ = ['CLASSES', 'PALETTE', 'draw_scene', 'generate_demo_scenes']

CLASSES = ('sky', 'ground', 'building', 'vehicle', 'pole', 'wire', 'sign')
# Cityscapes colours for the look-alike classes, so pictures read familiarly.
PALETTE = (
    (70, 130, 180),
    (128, 64, 128),
    (70, 70, 70),
    (0, 0, 142),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
)
SKY, GROUND, BUILDING, VEHICLE, POLE, WIRE, SIGN = range(len(CLASSES))

# Bumped whenever drawing changes, so stale data on disk is detected.
GENERATOR_VERSION = 1
_SPLIT_IDS = {'train': 0, 'val': 1}


def _smooth_noise(
    rng: np.random.Generator, shape: Tuple[int, int], cell: int
) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid, bilinearly upsampled."""
    h, w = shape
    grid = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    up = Image.fromarray(grid, mode='F').resize(
        ((w // cell + 2) * cell, (h // cell + 2) * cell), Image.BILINEAR
    )
    return np.asarray(up)[:h, :w]


def _colour(
    rng: np.random.Generator, low: Sequence[int], high: Sequence[int]
) -> np.ndarray:
    return rng.uniform(low, high).astype(np.float32)


def _paste(
    image: np.ndarray,
    label: np.ndarray,
    mask_img: Image.Image,
    texture: np.ndarray,
    cls: int,
) -> None:
    """Write ``texture`` and ``cls`` where the drawn mask is set."""
    mask = np.asarray(mask_img) > 0
    image[mask] = texture[mask] if texture.ndim == 3 else texture
    label[mask] = cls


def _new_mask(shape: Tuple[int, int]) -> Tuple[Image.Image, ImageDraw.ImageDraw]:
    mask = Image.new('L', (shape[1], shape[0]), 0)
    return mask, ImageDraw.Draw(mask)


def _draw_sky(rng, image, label, horizon):
    h, w = label.shape
    top = _colour(rng, (40, 80, 140), (120, 160, 230))
    bottom = _colour(rng, (150, 170, 190), (220, 230, 250))
    if rng.random() < 0.25:  # overcast: grey instead of blue
        grey = rng.uniform(120, 200)
        top, bottom = (
            np.full(3, grey - 30, np.float32),
            np.full(3, grey + 30, np.float32),
        )
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = top * (1 - t) + bottom * t
    clouds = np.clip(_smooth_noise(rng, (h, w), max(4, w // 8)) * 1.6 - 0.7, 0, 1)
    sky = sky * (1 - clouds[..., None]) + 235 * clouds[..., None]
    image[:horizon] = np.broadcast_to(sky, (h, w, 3))[:horizon]
    label[:horizon] = SKY


def _draw_ground(rng, image, label, horizon):
    h, w = label.shape
    base = _colour(rng, (60, 60, 60), (150, 140, 120))
    grain = rng.normal(0, 1, (h, w)).astype(np.float32)
    blotch = _smooth_noise(rng, (h, w), max(4, w // 16)) - 0.5
    ground = base * (1 + 0.10 * grain[..., None] + 0.35 * blotch[..., None])
    image[horizon:] = ground[horizon:]
    label[horizon:] = GROUND
    # Dashed lane markings: part of the ground class, but bright and linear.
    mask, draw = _new_mask((h, w))
    for _ in range(rng.integers(0, 3)):
        x0 = rng.uniform(0.2, 0.8) * w
        x1 = x0 + rng.uniform(-0.6, 0.6) * w
        steps = 8
        for k in range(0, steps, 2):
            ya = horizon + (h - horizon) * k / steps
            yb = horizon + (h - horizon) * (k + 1) / steps
            xa = x0 + (x1 - x0) * k / steps
            xb = x0 + (x1 - x0) * (k + 1) / steps
            draw.line([(xa, ya), (xb, yb)], fill=255, width=int(1 + 2 * k / steps))
    image[np.asarray(mask) > 0] = _colour(rng, (200, 200, 180), (250, 250, 240))


def _draw_buildings(rng, image, label, horizon):
    h, w = label.shape
    for _ in range(rng.integers(1, 5)):
        bw = rng.uniform(0.15, 0.45) * w
        x0 = rng.uniform(-0.1, 0.95) * w
        y1 = horizon + rng.uniform(0, 0.05) * h
        y0 = max(2.0, horizon - rng.uniform(0.15, 0.9) * horizon)
        base = _colour(rng, (80, 70, 60), (200, 190, 170))
        tex = np.broadcast_to(base, (h, w, 3)).copy()
        tex *= 1 + 0.15 * (_smooth_noise(rng, (h, w), 3)[..., None] - 0.5)
        # Regular window grid: darker or lit panes.
        pitch = int(rng.integers(5, 10))
        pane = max(2, pitch // 2)
        ys, xs = np.mgrid[0:h, 0:w]
        windows = ((ys - int(y0)) % pitch < pane) & ((xs - int(x0)) % pitch < pane)
        window_colour = _colour(rng, (20, 30, 40), (230, 220, 150))
        tex[windows] = window_colour
        mask, draw = _new_mask((h, w))
        draw.rectangle([x0, y0, x0 + bw, y1], fill=255)
        _paste(image, label, mask, tex, BUILDING)


def _draw_wires(rng, image, label, horizon):
    h, w = label.shape
    for _ in range(rng.integers(0, 3)):
        y_left = rng.uniform(0.05, 0.9) * horizon
        y_right = rng.uniform(0.05, 0.9) * horizon
        sag = rng.uniform(0.02, 0.15) * h
        xs = np.linspace(-2, w + 2, 24)
        t = (xs - xs[0]) / (xs[-1] - xs[0])
        ys = y_left * (1 - t) + y_right * t + sag * 4 * t * (1 - t)
        mask, draw = _new_mask((h, w))
        draw.line(list(zip(xs, ys)), fill=255, width=int(rng.integers(1, 3)))
        _paste(image, label, mask, _colour(rng, (10, 10, 10), (70, 60, 60)), WIRE)


def _draw_vehicles(rng, image, label, horizon):
    h, w = label.shape
    for _ in range(rng.integers(0, 4)):
        y1 = rng.uniform(horizon + 0.1 * (h - horizon), h + 2)
        # Perspective: vehicles nearer the bottom are bigger.
        scale = 0.3 + 0.7 * (y1 - horizon) / max(1.0, h - horizon)
        vw = rng.uniform(0.15, 0.35) * w * scale
        vh = vw * rng.uniform(0.45, 0.7)
        x0 = rng.uniform(-0.1, 0.95) * w
        body = _colour(rng, (20, 20, 20), (235, 235, 235))
        tex = np.broadcast_to(body, (h, w, 3)).copy()
        ys = np.arange(h, dtype=np.float32)[:, None]
        # Darker window band in the upper third, shading towards the bottom.
        band = (ys > y1 - vh) & (ys < y1 - 0.65 * vh)
        tex[np.broadcast_to(band, (h, w))] *= 0.35
        tex *= np.clip(1.1 - 0.4 * (ys - (y1 - vh)) / max(vh, 1), 0.6, 1.1)[..., None]
        mask, draw = _new_mask((h, w))
        radius = max(1, int(vh / 4))
        draw.rounded_rectangle([x0, y1 - vh, x0 + vw, y1 - 0.15 * vh], radius, fill=255)
        _paste(image, label, mask, tex, VEHICLE)
        wheels, draw = _new_mask((h, w))
        r = max(1.0, 0.18 * vh)
        for cx in (x0 + 0.22 * vw, x0 + 0.78 * vw):
            draw.ellipse([cx - r, y1 - 2 * r, cx + r, y1], fill=255)
        _paste(image, label, wheels, _colour(rng, (10, 10, 10), (40, 40, 40)), VEHICLE)


def _draw_sign(rng, image, label, cx, cy, r):
    h, w = label.shape
    mask, draw = _new_mask((h, w))
    shape = rng.integers(0, 3)
    if shape == 0:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == 1:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=255)
    else:
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=255)
    face = _colour(rng, (30, 30, 30), (255, 255, 255))
    tex = np.broadcast_to(face, (h, w, 3)).copy()
    ys, xs = np.mgrid[0:h, 0:w]
    # A contrasting rim makes signs stand out the way real ones do.
    rim = (np.abs(ys - cy) > 0.55 * r) | (np.abs(xs - cx) > 0.55 * r)
    tex[rim] = 255 - face
    _paste(image, label, mask, tex, SIGN)


def _draw_poles(rng, image, label, horizon):
    h, w = label.shape
    for _ in range(rng.integers(1, 5)):
        x = rng.uniform(0.02, 0.98) * w
        y_bottom = rng.uniform(horizon + 2, h + 2)
        y_top = max(1.0, y_bottom - rng.uniform(0.3, 0.8) * h)
        width = int(rng.integers(1, 4))
        mask, draw = _new_mask((h, w))
        draw.line([(x, y_top), (x, y_bottom)], fill=255, width=width)
        _paste(image, label, mask, _colour(rng, (40, 40, 40), (150, 140, 130)), POLE)
        if rng.random() < 0.6:
            r = rng.uniform(2, max(3.0, 0.05 * w))
            _draw_sign(rng, image, label, x, y_top + r, r)
    for _ in range(rng.integers(0, 2)):  # a few signs without poles
        r = rng.uniform(2, max(3.0, 0.04 * w))
        _draw_sign(rng, image, label, rng.uniform(0, w), rng.uniform(0, h), r)


def draw_scene(
    seed: Union[int, Sequence[int]], size: Tuple[int, int] = (128, 128)
) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one scene.

    Args:
        seed (int | Sequence[int]): Seed of :func:`numpy.random.default_rng`;
            the same seed always gives the same scene.
        size (tuple[int, int]): ``(height, width)`` in pixels. Default:
            ``(128, 128)``.

    Returns:
        tuple[np.ndarray, np.ndarray]: The ``(H, W, 3)`` uint8 RGB image and
        the ``(H, W)`` uint8 label map with values in
        ``range(len(CLASSES))``.

    Example:
        >>> image, label = draw_scene(0, size=(64, 96))
        >>> image.shape, label.shape
        ((64, 96, 3), (64, 96))
    """
    if (
        len(size) != 2
        or not all(isinstance(s, (int, np.integer)) for s in size)
        or min(size) < 16
    ):
        raise ValueError(f'size must be (height, width) with ints >= 16, got {size!r}')
    rng = np.random.default_rng(seed)
    h, w = int(size[0]), int(size[1])
    image = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    horizon = int(rng.uniform(0.35, 0.6) * h)
    for draw in (
        _draw_sky,
        _draw_ground,
        _draw_buildings,
        _draw_wires,
        _draw_vehicles,
        _draw_poles,
    ):
        draw(rng, image, label, horizon)
    # Camera-like softness and sensor noise; labels stay crisp.
    soft = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.6)
    )
    noisy = np.asarray(soft, np.float32) + rng.normal(0, 4, (h, w, 3))
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8), label


def _write_split(
    root: str, split: str, num: int, size: Tuple[int, int], seed: int
) -> None:
    img_dir = os.path.join(root, 'img_dir', split)
    ann_dir = os.path.join(root, 'ann_dir', split)
    os.makedirs(img_dir)
    os.makedirs(ann_dir)
    for index in range(num):
        image, label = draw_scene((seed, _SPLIT_IDS[split], index), size)
        name = f'scene_{index:05d}.png'
        Image.fromarray(image).save(os.path.join(img_dir, name))
        Image.fromarray(label, mode='L').save(os.path.join(ann_dir, name))


def _write_dataset(root: str, meta: Dict[str, object]) -> None:
    """Draw both splits into a temporary sibling of ``root``, then rename it."""
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.drn_demo-', dir=parent)
    size, seed = tuple(meta['size']), meta['seed']
    try:
        _write_split(tmp, 'train', meta['num_train'], size, seed)
        _write_split(tmp, 'val', meta['num_val'], size, seed)
        with open(os.path.join(tmp, 'meta.json'), 'w') as f:
            json.dump(meta, f, indent=2)
        try:
            os.rename(tmp, root)
        except OSError:
            if not os.path.isdir(root):  # not the benign race: re-raise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def generate_demo_scenes(
    root: str,
    num_train: int = 1000,
    num_val: int = 100,
    size: Tuple[int, int] = (64, 64),
    seed: int = 0,
) -> Dict[str, object]:
    """Write the demo dataset to ``root`` unless it is already there.

    Generation is deterministic, and files appear atomically: the data is
    written to a temporary sibling directory that is then renamed to
    ``root``, so an interrupted run leaves nothing half-written and several
    processes (e.g. the ranks of a distributed run) may call this at once.

    Args:
        root (str): Dataset directory to create.
        num_train (int): Number of training scenes. Default: 1000.
        num_val (int): Number of validation scenes. Default: 100.
        size (tuple[int, int]): ``(height, width)`` of each scene; the
            default suits a CPU: thin objects stay 1-3 px wide, and DRN-C-26
            trains on it in minutes. Default: ``(64, 64)``.
        seed (int): Seed of the whole dataset. Default: 0.

    Returns:
        dict: The generation arguments, as stored in ``root/meta.json``.

    Raises:
        ValueError: ``root`` exists but holds something else (other
            arguments, or no ``meta.json``); it is never overwritten.
    """
    check_int('num_train', num_train)
    check_int('num_val', num_val)
    meta = dict(
        generator_version=GENERATOR_VERSION,
        num_train=num_train,
        num_val=num_val,
        size=[int(s) for s in size],
        seed=seed,
        classes=list(CLASSES),
    )
    if not os.path.exists(root):
        _write_dataset(root, meta)
    meta_file = os.path.join(root, 'meta.json')
    found = None
    if os.path.isfile(meta_file):
        with open(meta_file) as f:
            found = json.load(f)
    if found != meta:
        raise ValueError(
            f'{root!r} exists but does not hold the demo data for these '
            f'arguments (expected meta.json {meta}, found {found}); remove it '
            f'or choose another root'
        )
    return meta

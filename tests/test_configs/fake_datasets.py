"""Tiny datasets in the real directory layouts of Cityscapes, VOC and ImageNet.

Generated once per test session in a temporary directory (no binaries in the
repository). Each layout is the one the MMSeg / mmpretrain dataset classes
read, file names included, so a config that works here finds a real dataset
laid out the same way:

* Cityscapes: ``leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png`` and
  ``gtFine/{train,val}/<city>/<name>_gtFine_labelTrainIds.png`` (train ids
  0..18, 255 = ignore), as written by MMSeg's ``cityscapes.py`` converter.
* PASCAL VOC 2012 + aug: ``VOCdevkit/VOC2012/JPEGImages/*.jpg``,
  ``SegmentationClass/*.png`` (palette PNGs, as in the VOC release),
  ``SegmentationClassAug/*.png`` (grey-level PNGs, as written by MMSeg's
  ``voc_aug.py`` converter) and ``ImageSets/Segmentation/{train,val,aug}.txt``.
* ImageNet-1k: ``train/<wnid>/<wnid>_<n>.JPEG``, flat ``val/*.JPEG`` and
  ``meta/{train,val}.txt`` lines ``<path> <class index>``; the val images
  match the bounding-box fixture ``tests/data/imagenet_loc``.
"""

from pathlib import Path
from typing import Dict, NamedTuple

import numpy as np
from PIL import Image

# Cityscapes frames are 2:1; these are 64x32.
CITY_SIZE = (64, 32)
CITY_SPLITS = {
    'train': [('aachen', 'aachen_000000_000019'), ('bochum', 'bochum_000000_000313')],
    'val': [('frankfurt', 'frankfurt_000000_000294')],
}
VOC_TRAIN = ['2007_000032', '2007_000039']
VOC_VAL = ['2007_000033']
VOC_AUG = ['2008_000002', '2008_000003', '2008_000007']
IMAGENET_TRAIN = [('n01440764', 0), ('n01443537', 1)]
# (name, class index, (width, height)): the images, classes and sizes of the
# bounding-box XML files in tests/data/imagenet_loc, so the localization
# config can be evaluated against them.
IMAGENET_VAL = [
    ('ILSVRC2012_val_00000001.JPEG', 1, (64, 48)),
    ('ILSVRC2012_val_00000002.JPEG', 2, (64, 64)),
]


class Fixtures(NamedTuple):
    """Roots of the generated datasets and what they hold."""

    cityscapes: Path
    voc: Path
    imagenet: Path
    counts: Dict[str, int]


def _rgb(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _labels(
    rng: np.random.Generator, width: int, height: int, num_classes: int
) -> np.ndarray:
    labels = rng.integers(0, num_classes, (height, width), dtype=np.uint8)
    labels[0, :] = 255  # an ignored border row, as void pixels are in the real data
    return labels


def _voc_palette() -> list:
    # The VOC colour map: bit-interleaved RGB of the class index.
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def make_cityscapes(root: Path, rng: np.random.Generator) -> None:
    w, h = CITY_SIZE
    for split, frames in CITY_SPLITS.items():
        for city, name in frames:
            img_dir = root / 'leftImg8bit' / split / city
            ann_dir = root / 'gtFine' / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            ann_dir.mkdir(parents=True, exist_ok=True)
            _rgb(rng, w, h).save(img_dir / f'{name}_leftImg8bit.png')
            Image.fromarray(_labels(rng, w, h, 19)).save(
                ann_dir / f'{name}_gtFine_labelTrainIds.png'
            )


def make_voc(root: Path, rng: np.random.Generator) -> None:
    voc = root / 'VOCdevkit' / 'VOC2012'
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug'):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    (voc / 'ImageSets' / 'Segmentation').mkdir(parents=True, exist_ok=True)
    palette = _voc_palette()
    # VOC images vary in size (at most 500 px); two sizes, landscape/portrait.
    sizes = [(48, 36), (36, 48)]
    for i, name in enumerate(VOC_TRAIN + VOC_VAL + VOC_AUG):
        w, h = sizes[i % 2]
        _rgb(rng, w, h).save(voc / 'JPEGImages' / f'{name}.jpg', quality=95)
        labels = _labels(rng, w, h, 21)
        if name in VOC_AUG:
            Image.fromarray(labels).save(voc / 'SegmentationClassAug' / f'{name}.png')
        else:
            png = Image.fromarray(labels, mode='P')
            png.putpalette(palette)
            png.save(voc / 'SegmentationClass' / f'{name}.png')
    for split, names in (('train', VOC_TRAIN), ('val', VOC_VAL), ('aug', VOC_AUG)):
        (voc / 'ImageSets' / 'Segmentation' / f'{split}.txt').write_text(
            ''.join(f'{n}\n' for n in names)
        )


def make_imagenet(root: Path, rng: np.random.Generator) -> None:
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    (root / 'val').mkdir(parents=True, exist_ok=True)
    lines = []
    for wnid, index in IMAGENET_TRAIN:
        (root / 'train' / wnid).mkdir(parents=True, exist_ok=True)
        for n in range(2):
            rel = f'{wnid}/{wnid}_{n}.JPEG'
            _rgb(rng, 40, 30).save(root / 'train' / rel, format='JPEG')
            lines.append(f'{rel} {index}\n')
    (root / 'meta' / 'train.txt').write_text(''.join(lines))
    lines = []
    for name, index, (w, h) in IMAGENET_VAL:
        _rgb(rng, w, h).save(root / 'val' / name, format='JPEG')
        lines.append(f'{name} {index}\n')
    (root / 'meta' / 'val.txt').write_text(''.join(lines))

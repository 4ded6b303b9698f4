# Cityscapes with DeepLabv3's protocol (Chen et al. 2017, Appendix C): the VOC
# training protocol (random scale 0.5-2.0 of the original image, left-right
# flip) with 769x769 crops, and inference on the whole image. Cityscapes
# images are all 2048x1024, so RandomResize around (2048, 1024) scales the
# original image.
_base_ = 'mmseg::_base_/datasets/cityscapes.py'
crop_size = (769, 769)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True
    ),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

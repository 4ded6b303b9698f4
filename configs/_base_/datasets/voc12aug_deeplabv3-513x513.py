# PASCAL VOC 2012 + aug with DeepLabv3's training augmentation (Chen et al.
# 2017, Sec. 4.1): "randomly scaling the input images (from 0.5 to 2.0) and
# randomly left-right flipping", 513x513 crops. VOC images are at most 500
# pixels on their long side, so Resize to (500, 500) with kept aspect ratio
# is the original size and the ratio range scales the original image.
# Validation on VOC val at the original resolution.
_base_ = './voc12aug_drn-512x512.py'
crop_size = (513, 513)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize', scale=(500, 500), ratio_range=(0.5, 2.0), keep_ratio=True
    ),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=crop_size),
    dict(type='PackSegInputs'),
]
dataset_train = dict(
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt',
    pipeline=train_pipeline,
)
dataset_aug = dict(
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
    ann_file='ImageSets/Segmentation/aug.txt',
    pipeline=train_pipeline,
)
train_dataloader = dict(
    batch_size=2,
    dataset=dict(type='ConcatDataset', datasets=[dataset_train, dataset_aug]),
)

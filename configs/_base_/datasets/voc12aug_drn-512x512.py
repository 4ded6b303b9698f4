# PASCAL VOC 2012 + the SBD augmented annotations (trainaug: VOC train plus
# SegmentationClassAug, 21 classes), with the DRN paper's crop + flip
# protocol: no rescaling, no photometric distortion. Images smaller than the
# crop are padded (label 255). Validation on VOC val at the original
# resolution (VOC images are at most 500x500; no resize).
_base_ = 'mmseg::_base_/datasets/pascal_voc12_aug.py'
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=crop_size),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
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
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

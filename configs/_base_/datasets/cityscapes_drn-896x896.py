# Cityscapes (19 classes) with the DRN paper's training protocol (Sec. 5.3):
# "we only use image cropping and mirroring for training" -- no rescaling and
# no photometric distortion. The 896x896 crop is the official code's
# (github.com/fyu/drn README: `segment.py train ... -s 896`). Validation runs
# on the full 2048x1024 images (MMSeg's Resize to (2048, 1024) keeps them as
# they are). 2 images per GPU, 8 GPUs: the official batch of 16.
_base_ = 'mmseg::_base_/datasets/cityscapes.py'
crop_size = (896, 896)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
# Multi-scale testing (tools/test.py --tta) as fyu/drn's `segment.py test
# --ms` (d75db2e): the image at scales 1, 0.5, 0.75, 1.25, 1.5 and 1.75, no
# flipped copies. MMSeg's SegTTAModel averages the views' softmax
# probabilities; segment.py sums their log-probabilities (the argmax of a
# geometric instead of an arithmetic mean).
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ],
    ),
]

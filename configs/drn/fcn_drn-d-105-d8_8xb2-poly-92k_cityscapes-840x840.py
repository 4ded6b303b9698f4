# DRN-D-105 on Cityscapes, the official best setup (github.com/fyu/drn README,
# unchanged from 93986da to d75db2e:
# 75.6 mIoU on val, "trained with poly learning rate, random scaling and
# rotations"):
#   segment.py train -c 19 -s 840 --arch drn_d_105 --random-scale 2
#       --random-rotate 10 --batch-size 16 --epochs 500 --lr 0.01
#       --momentum 0.9 --lr-mode poly --bn-sync
# Still the plain head (1x1 classifier + bilinear upsampling).
# - random scale 2: a factor drawn uniformly from [1/2, 2] -> RandomResize
#   with ratio_range (0.5, 2.0) around the native 2048x1024 size;
# - random rotate 10: an angle in [-10, 10] degrees, label padded with the
#   ignore index 255. The official code reflects the image into the corners,
#   MMSeg's RandomRotate fills them with 0;
# - poly: lr = 0.01 * (1 - epoch / 500) ** 0.9, stepped per epoch in the
#   official code, per iteration here;
# - 500 epochs of 2975 // 16 = 185 iterations = 92500 iterations; weight
#   decay 1e-4 (segment.py default); BN synchronised across GPUs (--bn-sync).
_base_ = './fcn_drn-d-105-d8_8xb2-46k_cityscapes-896x896.py'
crop_size = (840, 840)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
# The official code rotates, then rescales, then crops and flips.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomRotate', prob=1.0, degree=10, pad_val=0, seg_pad_val=255),
    dict(
        type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True
    ),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

iters_per_epoch = 185
max_iters = 500 * iters_per_epoch
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=50 * iters_per_epoch)
default_hooks = dict(checkpoint=dict(interval=50 * iters_per_epoch))

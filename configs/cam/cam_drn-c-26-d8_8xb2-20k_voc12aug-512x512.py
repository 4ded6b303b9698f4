# DRN-C-26 class activation maps as a weakly-supervised segmenter on PASCAL
# VOC 2012 + aug (20 classes + background): trained from image-level labels
# only, evaluated with MMSeg's mIoU against the full masks.
# The DRN paper uses the ImageNet classifier's maps without any training
# (Sec. 3); it reports no VOC segmentation setup, so the schedule here is our
# choice: crop + flip (the DRN protocol), SGD lr 1e-3, momentum 0.9, weight
# decay 1e-4, poly decay over 20K iterations, batch 16.
_base_ = [
    '../_base_/models/cam_drn-d8.py',
    '../_base_/datasets/voc12aug_drn-512x512.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
]
crop_size = (512, 512)
max_iters = 20000
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='drn://drn_c_26')),
)
optimizer = dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)

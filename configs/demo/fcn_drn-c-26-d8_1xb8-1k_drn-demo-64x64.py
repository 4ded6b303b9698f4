# The embedded demo (tools/demo.py): DRN-C-26 with the DRN paper's plain head
# (1x1 classifier on the output-stride-8 features, bilinear upsampling of the
# logits) trained from scratch on mmdrn's generated street scenes, on CPU:
# about ten minutes on two cores, no pretrained weights, no download.
#
# Tuned on this budget (1000 iterations x 8 scenes of 64x64): AdamW at 2e-3
# with a poly decay learned faster than SGD (momentum 0.9, lr 0.02), and
# class weights 1/sqrt(pixel frequency) (normalised to mean 1; frequencies of
# the 1000 training scenes: sky 30.1%, ground 46.4%, building 14.0%,
# vehicle 2.6%, pole 3.7%, wire 1.9%, sign 1.4%) keep the rare thin and small
# classes from being ignored.
_base_ = [
    '../_base_/models/fcn_drn-d8.py',
    '../_base_/datasets/drn_demo.py',
    'mmseg::_base_/default_runtime.py',
]
crop_size = (64, 64)
# One CPU process: plain BN (SyncBN would be reverted anyway).
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # From scratch: the base model's ImageNet init_cfg is dropped.
    backbone=dict(type='DRN_C', depth=26, norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(
        num_classes=7,
        norm_cfg=norm_cfg,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            class_weight=[0.39, 0.31, 0.57, 1.3, 1.11, 1.52, 1.81],
        ),
    ),
)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01),
)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=1000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Draw every test image when asked to (tools/test.py --show-dir).
    visualization=dict(type='SegVisualizationHook', interval=1),
)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)

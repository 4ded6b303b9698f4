# The embedded demo (tools/demo.py): DRN-C-26 with the DRN paper's plain head
# (1x1 classifier on the output-stride-8 features, bilinear upsampling of the
# logits) trained from scratch on mmdrn's generated street scenes, on CPU.
# Sized to finish in about ten minutes on two cores; no pretrained weights,
# no download.
_base_ = [
    '../_base_/models/fcn_drn-d8.py',
    '../_base_/datasets/drn_demo.py',
    'mmseg::_base_/default_runtime.py',
]
crop_size = (128, 128)
# One CPU process: plain BN (SyncBN would be reverted anyway).
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(type='DRN_C', depth=26, norm_cfg=norm_cfg),
    decode_head=dict(num_classes=7, norm_cfg=norm_cfg),
)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01),
)
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=1000, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=250, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Draw every test image when asked to (tools/test.py --show-dir).
    visualization=dict(type='SegVisualizationHook', interval=1),
)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)

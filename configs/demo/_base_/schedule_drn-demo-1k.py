# The training recipe of every demo config: optimiser, schedule, hooks and
# seed, and the class weights for the loss (set by each config in its decode
# head). Chosen for DRN-C-26 (../fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py)
# before any comparison was run, and used unchanged for every model of the
# comparison with MMSegmentation's baselines.
# 1/sqrt(pixel frequency) of the demo's seven classes, normalised to mean 1.
class_weight = [0.39, 0.31, 0.57, 1.3, 1.11, 1.52, 1.81]
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
    visualization=dict(type='SegVisualizationHook', interval=1),
)
randomness = dict(seed=0)

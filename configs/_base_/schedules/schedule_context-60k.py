# Yu & Koltun (ICLR 2016) train their VOC 2012 front-end by SGD with
# learning rate 1e-3, momentum 0.9, mini-batches of 14 and 60K iterations,
# with no learning-rate decay listed (as summarised in the CSC2548 lecture
# slides on the paper). We train front-end and context module together with
# that recipe. Weight decay is not stated: 1e-4, as in the DRN recipe. The
# configs use 8 GPUs x 2 = 16 crops per batch instead of 14.
optimizer = dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
# A constant learning rate: no scheduler.
param_scheduler = None
train_cfg = dict(type='IterBasedTrainLoop', max_iters=60000, val_interval=6000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=6000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)

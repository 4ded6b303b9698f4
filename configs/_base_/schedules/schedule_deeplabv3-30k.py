# DeepLabv3's first training stage (Chen et al. 2017, Sec. 4.1): the "poly"
# policy, lr = 0.007 * (1 - iter / max_iter) ** 0.9, for 30K iterations on
# VOC trainaug with batches of 16 (8 GPUs x 2 here). The paper does not state
# momentum or weight decay in the text; SGD momentum 0.9 and weight decay 1e-4
# (the DRN recipe) are our choice. Cityscapes configs override max_iters
# (90K, Appendix C).
max_iters = 30000
optimizer = dict(type='SGD', lr=0.007, momentum=0.9, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=3000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)

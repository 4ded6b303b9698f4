# The context paper's SGD recipe (Yu & Koltun, ICLR 2016): learning rate
# 1e-3, momentum 0.9, 60K iterations, mini-batches of 14, no learning-rate
# decay listed (its VOC front-end training, as summarised in the CSC2548
# lecture slides on the paper). The official code (github.com/fyu/dilation
# at 0f10574) trains the context module with the same lr and momentum
# (docs/training.md; train.py's default for the context stage is lr 1e-3)
# and uses weight decay 5e-4 for every stage (train.py, make_solver), which
# we take. The configs use 8 GPUs x 2 = 16 crops per batch instead of 14
# (the official context stage uses 60 stored score maps per batch).
optimizer = dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=5e-4)
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

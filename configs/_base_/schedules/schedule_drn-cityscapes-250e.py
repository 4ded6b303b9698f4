# The official step schedule for the DRN Cityscapes models (github.com/fyu/drn
# README, "Training"):
#   segment.py train -c 19 -s 896 --batch-size 16 --epochs 250 --lr 0.001
#       --momentum 0.99 --step 100
# with segment.py's default weight decay 1e-4 (its other defaults, lr 0.01 and
# momentum 0.9, are overridden by that command). The paper itself states no
# segmentation optimiser settings.
# Epochs -> iterations: 2975 training images // 16 per batch = 185 iterations
# per epoch (the official loader drops the last partial batch), so 250 epochs
# = 46250 iterations and the lr is divided by 10 every 100 epochs = 18500
# iterations.
iters_per_epoch = 185
optimizer = dict(type='SGD', lr=0.001, momentum=0.99, weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(
        type='MultiStepLR',
        milestones=[100 * iters_per_epoch, 200 * iters_per_epoch],
        gamma=0.1,
        by_epoch=False,
        begin=0,
        end=250 * iters_per_epoch,
    )
]
train_cfg = dict(
    type='IterBasedTrainLoop',
    max_iters=250 * iters_per_epoch,
    val_interval=25 * iters_per_epoch,
)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=25 * iters_per_epoch
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)

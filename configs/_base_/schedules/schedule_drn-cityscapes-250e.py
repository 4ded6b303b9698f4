# The official step schedule for the DRN Cityscapes models, as the fyu/drn
# README states it at revision 8466d99 (2018-02-15). The README's Cityscapes
# results table appeared with 93986da (2018-01-01); this command stood from
# ed24cb5 (the same day) until aa5ac54 (2018-06-02) changed it:
#   segment.py train -c 19 -s 896 --arch drn_d_22 --batch-size 16
#       --epochs 250 --lr 0.001 --momentum 0.99 --step 100
# with segment.py's default weight decay 1e-4. The README's last revision
# (16acdba, 2018-06-02, unchanged at d75db2e) shows --batch-size 32 --lr 0.01
# --momentum 0.9 instead and adds that, depending on the batch size, lr and
# momentum "can be 0.01/0.9 or 0.001/0.99"; we keep batch 16 (8 GPUs x 2)
# with its 0.001/0.99 pair. The paper states no segmentation optimiser.
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

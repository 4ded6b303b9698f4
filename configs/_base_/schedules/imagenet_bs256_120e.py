# The DRN paper's ImageNet schedule (Sec. 5.1): SGD, momentum 0.9, weight
# decay 1e-4, learning rate 0.1 divided by 10 every 30 epochs, 120 epochs in
# total, for a total batch of 256 (8 GPUs x 32; He et al.'s batch, which the
# official classify.py also uses by default).
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs256.py'
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
)
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1
)
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)

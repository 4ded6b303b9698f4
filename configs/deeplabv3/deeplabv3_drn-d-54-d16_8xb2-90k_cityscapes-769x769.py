# DeepLabv3 with a DRN-D-54 backbone on Cityscapes (19 classes): the VOC
# protocol with 769x769 crops and 90K iterations, whole-image inference
# (Chen et al. 2017, Appendix C). Trained at output stride 16 with ASPP rates
# (6, 12, 18); evaluate at output stride 8 with the matching -d16-test-d8 config.
_base_ = [
    '../_base_/models/deeplabv3_drn-d16.py',
    '../_base_/datasets/cityscapes_deeplabv3-769x769.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
    '../_base_/schedules/schedule_deeplabv3-30k.py',
]
crop_size = (769, 769)
max_iters = 90000
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DRN_D',
        depth=54,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_d_54'),
    ),
    decode_head=dict(num_classes=19),
)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=9000)
default_hooks = dict(checkpoint=dict(interval=9000))

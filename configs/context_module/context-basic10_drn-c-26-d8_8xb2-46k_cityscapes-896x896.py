# DRN-C-26 front-end + the 10-layer basic context module (dilations 1, 1, 2,
# 4, 8, 16, 32, 64, 1 and a closing 1x1; receptive field 259), the layout of
# the context paper's Cityscapes model (official `dilation10_cityscapes`), on
# Cityscapes (19 classes) with the DRN Cityscapes protocol: 896x896 crop +
# flip and the official DRN step schedule (250 epochs).
_base_ = [
    '../_base_/models/context_drn-d8.py',
    '../_base_/datasets/cityscapes_drn-896x896.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/schedule_drn-cityscapes-250e.py',
]
crop_size = (896, 896)
num_classes = 19
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/drn_c_26-ddedf421.pth')
    ),
    neck=dict(variant='basic', num_layers=10, num_classes=num_classes),
    decode_head=dict(
        in_channels=num_classes, channels=num_classes, num_classes=num_classes
    ),
)

# DRN-C-26 front-end + the basic context module (8 layers, receptive field 67)
# on PASCAL VOC 2012 + aug (21 classes), crop + flip, the context paper's
# SGD recipe (lr 1e-3, momentum 0.9, 60K iterations).
_base_ = [
    '../_base_/models/context_drn-d8.py',
    '../_base_/datasets/voc12aug_drn-512x512.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/schedule_context-60k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/drn_c_26-ddedf421.pth')
    ),
    neck=dict(variant='basic', num_layers=8),
)

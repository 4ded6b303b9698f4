# DRN-C-26 on Cityscapes with the DRN paper's plain head (Sec. 5.3, Table 3):
# 1x1 classifier + bilinear upsampling, crop + flip only, the official step
# schedule. See ../_base_/ for where each number comes from; the siblings in
# this folder inherit this file and change the backbone.
_base_ = [
    '../_base_/models/fcn_drn-d8.py',
    '../_base_/datasets/cityscapes_drn-896x896.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
    '../_base_/schedules/schedule_drn-cityscapes-250e.py',
]
crop_size = (896, 896)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DRN_C',
        depth=26,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_c_26'),
    ),
    decode_head=dict(in_channels=512, channels=512),
)

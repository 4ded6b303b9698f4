# Stage 2 of the context-module recipe on Cityscapes (19 classes): the
# 10-layer basic module (dilations 1, 1, 2, 4, 8, 16, 32, 64, 1 and a closing
# 1x1; receptive field 259), the layout of the official Cityscapes model
# (fyu/dilation, dilation10_cityscapes), on the fixed DRN-C-26 front-end
# trained by ../drn/fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896.py, with the
# module's recipe of the VOC configs (lr 1e-3, momentum 0.9, 60K iterations)
# and the DRN Cityscapes data protocol (896x896 crops + flip).
_base_ = [
    '../_base_/models/context_drn-d8.py',
    '../_base_/datasets/cityscapes_drn-896x896.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
    '../_base_/schedules/schedule_context-60k.py',
]
crop_size = (896, 896)
num_classes = 19
data_preprocessor = dict(size=crop_size)
load_from = 'work_dirs/fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896/iter_46250.pth'
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=None, frozen_stages=8, norm_eval=True),
    decode_head=dict(variant='basic', num_layers=10, num_classes=num_classes),
)
optim_wrapper = dict(
    paramwise_cfg=dict(
        bias_lr_mult=2.0,
        bias_decay_mult=0.0,
        custom_keys={'decode_head.conv_seg': dict(lr_mult=0.0, decay_mult=0.0)},
    )
)

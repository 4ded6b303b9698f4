# DRN-D-105 on ImageNet-1k with the DRN paper's recipe (Sec. 5.1): SGD 0.1,
# /10 every 30 epochs, 120 epochs, batch 256, scale/aspect + colour
# augmentation; 1-crop evaluation (resize 256, centre 224). The paper's
# 10-crop protocol is drn-d-105_8xb32_in1k-10crop.py (tools/test.py --tta).
_base_ = [
    '../_base_/models/drn_imagenet.py',
    '../_base_/datasets/imagenet_bs32_drn.py',
    '../_base_/schedules/imagenet_bs256_120e.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
]
model = dict(
    backbone=dict(type='DRN_D', depth=105, out_indices=(7,)),
    head=dict(in_channels=512),
)

# fyu/drn's released Cityscapes model DRN-A-50, evaluated as fyu/drn tests it (see
# the DRN-D-22 sibling); convert its DRNSeg checkpoint with --model drn_a_50.
_base_ = './fcn_drn-d-22-d8_fyu-cityscapes-1024x2048.py'
model = dict(
    backbone=dict(
        type='DRN_A',
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'),
    ),
    decode_head=dict(in_channels=2048, channels=2048),
)

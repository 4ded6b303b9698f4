# DRN-A-50: the DRN-C-26 recipe with DRN-A-50, which starts from torchvision's
# ImageNet ResNet-50 as fyu/drn's drn_a_50 does; its final map has 2048
# channels.
_base_ = './fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896.py'
model = dict(
    backbone=dict(
        type='DRN_A',
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'),
    ),
    decode_head=dict(in_channels=2048, channels=2048),
)

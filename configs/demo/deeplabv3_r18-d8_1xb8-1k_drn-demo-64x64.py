# MMSegmentation's DeepLabV3 on its dilated ResNet-18 (ResNetV1c, output
# stride 8), as in its deeplabv3_r18-d8 configs: ASPPHead with 128 channels,
# rates 1, 12, 24, 36, image pooling and dropout 0.1. Built from
# MMSegmentation's DeepLabV3 base config; changed only where the DRN demo
# config differs: trained from scratch, plain BN on one process, no auxiliary
# head, the demo's class weights and training recipe. At 64x64 inputs the
# feature map is 8x8, so the 3x3 branches with rates 12, 24 and 36 only see
# their centre tap (the others fall into the zero padding): MMSegmentation's
# rates are kept as shipped, not tuned to the demo.
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py',
    '../_base_/datasets/drn_demo.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
    './_base_/schedule_drn-demo-1k.py',
]
custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)
crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=512,
        channels=128,
        num_classes=7,
        norm_cfg=norm_cfg,
        loss_decode=dict(class_weight={{_base_.class_weight}}, avg_non_ignore=True),
    ),
    auxiliary_head=None,
)
env_cfg = dict(cudnn_benchmark=False)

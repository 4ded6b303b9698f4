# MMSegmentation's own dilated ResNet-18 (ResNetV1c: deep stem, strides
# 1,2,1,1 and dilations 1,1,2,4, i.e. output stride 8, as in its
# fcn_r18-d8 configs) with the DRN paper's plain head, on the embedded demo:
# the baseline of the DRN demo models. Built from MMSegmentation's FCN base
# config; changed only where the DRN demo config differs: trained from
# scratch (no ImageNet weights), plain BN on one process, the head reduced to
# the 1x1 classifier (no convolutions, no dropout, no input concatenation),
# no auxiliary head, the demo's class weights and training recipe.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
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
        channels=512,
        in_index=-1,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=7,
        norm_cfg=norm_cfg,
        loss_decode=dict(class_weight={{_base_.class_weight}}, avg_non_ignore=True),
    ),
    auxiliary_head=None,
)
env_cfg = dict(cudnn_benchmark=False)

# The embedded demo (tools/demo.py): DRN-C-26 with the DRN paper's plain head
# (1x1 classifier on the output-stride-8 features, bilinear upsampling of the
# logits) trained from scratch on mmdrn's generated street scenes, on CPU:
# about ten minutes on two cores, no pretrained weights, no download.
#
# Tuned on this budget (1000 iterations x 8 scenes of 64x64): AdamW at 2e-3
# with a poly decay learned faster than SGD (momentum 0.9, lr 0.02), and
# class weights 1/sqrt(pixel frequency) (normalised to mean 1; frequencies of
# the 1000 training scenes: sky 30.1%, ground 46.4%, building 14.0%,
# vehicle 2.6%, pole 3.7%, wire 1.9%, sign 1.4%) keep the rare thin and small
# classes from being ignored.
_base_ = [
    '../_base_/models/fcn_drn-d8.py',
    '../_base_/datasets/drn_demo.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
    './_base_/schedule_drn-demo-1k.py',
]
crop_size = (64, 64)
# One CPU process: plain BN (SyncBN would be reverted anyway).
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # From scratch: the base model's ImageNet init_cfg is dropped.
    backbone=dict(type='DRN_C', depth=26, norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(
        num_classes=7,
        norm_cfg=norm_cfg,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            class_weight={{_base_.class_weight}},
        ),
    ),
)
env_cfg = dict(cudnn_benchmark=False)

# DeepLabv3 (Chen et al., "Rethinking Atrous Convolution for Semantic Image
# Segmentation", 2017) on a DRN: ASPP with image-level features on the last
# DRN map, then a 1x1 classifier whose logits are upsampled bilinearly.
#
# Training runs at output stride 16 with ASPP rates (6, 12, 18) (paper Sec.
# 3.3 and 4.1); the -d16-test-d8 configs evaluate the same weights at output
# stride 8 with the rates doubled to (12, 24, 36), which the paper reports as
# better (Table 6, 77.21 -> 78.51 on VOC val for its ResNet-101).
# The -test-d8 backbones also set train_output_stride=16: the stride is
# removed and every later dilation of the os=16 plan doubled (levels 7 and 8
# included), so the trained function is sampled densely (mmdrn's level_plan).
# BN: batch statistics over 16 images (SyncBN across GPUs) and "decay =
# 0.9997", i.e. PyTorch momentum 1 - 0.9997 = 3e-4, in every BN layer.
# Loss averaged over the labelled pixels (avg_non_ignore=True), as in the
# DRN code; the DeepLabv3 paper does not say.
custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True, momentum=3e-4)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DRN_D',
        depth=54,
        output_stride=16,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_d_54'),
    ),
    # 256 channels per branch and after the fusing 1x1 (paper Sec. 3.3). The
    # paper states no dropout; 0.1 before the classifier as in MMSeg's own
    # DeepLabv3 configs.
    neck=dict(
        type='ASPPNeck',
        in_channels=512,
        channels=256,
        dilations=(1, 6, 12, 18),
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        in_index=-1,
    ),
    decode_head=dict(
        type='FCNHead',
        in_channels=256,
        channels=256,
        in_index=-1,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True,
        ),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)

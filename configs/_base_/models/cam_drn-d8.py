# Weakly-supervised semantic segmentation from DRN class activation maps (Yu
# et al., CVPR 2017, Sec. 3 "Localization"): the classifier is a 1x1
# convolution applied at every position of the last DRN map (output stride
# 8), with a per-pixel softmax over the foreground classes; a pixel is
# background unless its most probable class exceeds bg_threshold. Training
# sees only image-level labels (the classes present in each crop's mask,
# multi-label BCE on the globally pooled scores), never the pixels.
# See mmdrn.openmmlab.heads.CAMSegHead.
custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
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
        type='DRN_C',
        depth=26,
        output_stride=8,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_c_26'),
    ),
    decode_head=dict(
        type='CAMSegHead',
        in_channels=512,
        num_classes=21,
        bg_threshold=0.5,
        in_index=-1,
        align_corners=False,
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)

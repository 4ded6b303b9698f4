# A DRN front-end followed by the context module of Yu & Koltun ("Multi-Scale
# Context Aggregation by Dilated Convolutions", ICLR 2016), arranged as in
# the official code (github.com/fyu/dilation, network.py at 0f10574): the
# front-end's 1x1 classifier makes K = num_classes class score maps, the
# module (identity-initialised, no normalisation, a ReLU after each 3x3)
# refines them with exponentially dilated 3x3 convolutions, and its closing
# 1x1 layer gives the logits, which are upsampled bilinearly. Both live in
# mmdrn's ContextHead: conv_seg is the front-end classifier (the key of a
# plain FCN head, so a trained front-end loads by name) and `context` the
# module. Nothing follows the module, so a fresh model computes exactly the
# front-end's scores as the module's ReLUs pass them.
#
# Loss: averaged over the labelled pixels (avg_non_ignore=True), as in the
# official code (Caffe SoftmaxWithLoss, ignore_label 255, normalization
# VALID) and in fyu/drn's segment.py.
custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
num_classes = 21
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
        type='ContextHead',
        in_channels=512,
        num_classes=num_classes,
        variant='basic',
        num_layers=8,
        in_index=-1,
        dropout_ratio=0.0,
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

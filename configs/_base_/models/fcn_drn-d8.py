# The DRN paper's segmentation model (Yu et al., CVPR 2017, Sec. 5.3): the
# classification DRN run fully convolutionally (output stride 8), a 1x1
# classifier on its last feature map and bilinear upsampling of the logits;
# "we do not ... append additional modules to the network". MMSeg's
# EncoderDecoder upsamples the logits bilinearly to the label size (in the
# loss and at inference), so the head is only the 1x1 classifier: an FCNHead
# with no convolutions and no dropout.
#
# The backbone returns all its levels; in_index=-1 picks the final map (512
# channels for DRN-B/C/D and DRN-A-18/34, 2048 for DRN-A-50/101).
# Inputs are normalised with the ImageNet statistics the backbone was
# pretrained with (MMSeg's convention); the official code instead uses each
# dataset's own mean/std (fyu/drn datasets/cityscapes/info.json).
#
# The backbone starts from ImageNet weights (the paper fine-tunes its
# classification DRNs): `drn://drn_c_26` is mmdrn's checkpoint scheme (the
# timm pretrained sources of drn_c_26, downloaded once and verified).
#
# Loss: the official segment.py trains with NLLLoss2d(ignore_index=255) on
# log-softmax outputs, whose mean runs over the labelled pixels only;
# avg_non_ignore=True makes MMSeg's CrossEntropyLoss average the same way
# (its default divides by every pixel, ignored ones included, which scales
# the effective learning rate by the labelled fraction of each batch).
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
        type='FCNHead',
        in_channels=512,
        channels=512,
        in_index=-1,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=19,
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

# A DRN front-end followed by the context module of Yu & Koltun ("Multi-Scale
# Context Aggregation by Dilated Convolutions", ICLR 2016), in the paper's own
# arrangement: the front-end's 1x1 classifier makes C = num_classes class
# score maps, the module (identity-initialised, no normalisation) refines them
# with exponentially dilated 3x3 convolutions and maps back to C channels, and
# the logits are upsampled bilinearly. The neck holds the front-end
# classifier and the module; the decode head adds the final 1x1 classifier.
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
    ),
    neck=dict(
        type='ContextNeck',
        in_channels=512,
        num_classes=num_classes,
        variant='basic',
        num_layers=8,
        in_index=-1,
    ),
    decode_head=dict(
        type='FCNHead',
        in_channels=num_classes,
        channels=num_classes,
        in_index=-1,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)

# fyu/drn's released Cityscapes model DRN-C-26, evaluated as fyu/drn tests it (see
# the DRN-D-22 sibling); convert its DRNSeg checkpoint with --model drn_c_26.
_base_ = './fcn_drn-d-22-d8_fyu-cityscapes-1024x2048.py'
model = dict(
    backbone=dict(
        type='DRN_C',
        depth=26,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_c_26'),
    ),
    decode_head=dict(in_channels=512, channels=512),
)

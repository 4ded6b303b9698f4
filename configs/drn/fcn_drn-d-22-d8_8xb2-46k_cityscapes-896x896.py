# DRN-D-22: the DRN-C-26 recipe with fyu/drn's DRN-D-22 backbone.
_base_ = './fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896.py'
model = dict(
    backbone=dict(
        type='DRN_D',
        depth=22,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_d_22'),
    )
)

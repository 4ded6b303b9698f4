# DRN-C-42: the DRN-C-26 recipe with the deeper backbone.
_base_ = './fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896.py'
model = dict(
    backbone=dict(
        depth=42, init_cfg=dict(type='Pretrained', checkpoint='drn://drn_c_42')
    )
)

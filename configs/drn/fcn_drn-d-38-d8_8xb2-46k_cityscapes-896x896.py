# DRN-D-38: the DRN-D-22 recipe with the deeper backbone.
_base_ = './fcn_drn-d-22-d8_8xb2-46k_cityscapes-896x896.py'
model = dict(
    backbone=dict(
        depth=38, init_cfg=dict(type='Pretrained', checkpoint='drn://drn_d_38')
    )
)

# DRN-D-105: the DRN-D-22 recipe with the deepest backbone. fyu/drn publishes
# no number for this recipe; its DRN-D-105 result is the poly + augmentation
# sibling fcn_drn-d-105-d8_8xb2-poly-92k_cityscapes-840x840.py.
_base_ = './fcn_drn-d-22-d8_8xb2-46k_cityscapes-896x896.py'
model = dict(
    backbone=dict(
        depth=105, init_cfg=dict(type='Pretrained', checkpoint='drn://drn_d_105')
    )
)

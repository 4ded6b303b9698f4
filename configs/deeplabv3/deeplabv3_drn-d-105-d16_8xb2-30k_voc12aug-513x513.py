# DeepLabv3 on DRN-D-105: the DRN-D-54 VOC recipe with the deeper backbone.
_base_ = './deeplabv3_drn-d-54-d16_8xb2-30k_voc12aug-513x513.py'
model = dict(
    backbone=dict(
        depth=105, init_cfg=dict(type='Pretrained', checkpoint='drn://drn_d_105')
    )
)

# DeepLabv3 with a DRN-D-54 backbone on PASCAL VOC 2012 + aug (21 classes):
# trained at output stride 16 with ASPP rates (6, 12, 18), 513x513 crops,
# batch 16, lr 0.007 poly, 30K iterations (Chen et al. 2017, Sec. 4.1).
# Evaluate at output stride 8 with the matching -d16-test-d8 config.
_base_ = [
    '../_base_/models/deeplabv3_drn-d16.py',
    '../_base_/datasets/voc12aug_deeplabv3-513x513.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
    '../_base_/schedules/schedule_deeplabv3-30k.py',
]
crop_size = (513, 513)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DRN_D',
        depth=54,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_d_54'),
    ),
    decode_head=dict(num_classes=21),
)

# Stage 1 of the context-module recipe on PASCAL VOC 2012 + aug: the
# front-end alone, i.e. DRN-C-26 with the DRN paper's plain head (1x1
# classifier + bilinear upsampling), trained with the context paper's
# front-end recipe (SGD lr 1e-3, momentum 0.9, 60K iterations; see the
# schedule). Its last checkpoint, which `python tools/train.py THIS_CONFIG`
# writes to work_dirs/fcn_drn-c-26-d8_8xb2-60k_voc12aug-512x512/iter_60000.pth,
# is the starting point (load_from) of the context-*_voc12aug configs.
_base_ = [
    '../_base_/models/fcn_drn-d8.py',
    '../_base_/datasets/voc12aug_drn-512x512.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
    '../_base_/schedules/schedule_context-60k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='DRN_C',
        depth=26,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_c_26'),
    ),
    decode_head=dict(in_channels=512, channels=512, num_classes=21),
)

# Stage 2 of the context-module recipe on PASCAL VOC 2012 + aug: the basic
# context module (8 layers, receptive field 67) trained on top of the trained
# front-end of stage 1 (fcn_drn-c-26-d8_8xb2-60k_voc12aug-512x512.py), which
# stays fixed, as in the official code (github.com/fyu/dilation,
# docs/training.md at 0f10574: the module is trained on the front-end's
# stored class scores, lr 1e-3, momentum 0.9).
# - load_from: the stage-1 checkpoint. Its backbone.* and
#   decode_head.conv_seg.* (the front-end classifier) load by name; the
#   module (decode_head.context.*) keeps its identity initialisation, so
#   training starts from exactly the front-end's predictions.
# - Fixed front-end: every backbone level frozen (frozen_stages=8, BN in
#   eval mode) and the classifier's lr and weight decay multiplied by 0.
# - The module's biases get twice the lr and no weight decay, as every
#   ctx_* layer of the official network.py (lr_mult 2, decay_mult 0).
_base_ = [
    '../_base_/models/context_drn-d8.py',
    '../_base_/datasets/voc12aug_drn-512x512.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/mmdrn_runtime.py',
    '../_base_/schedules/schedule_context-60k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
load_from = 'work_dirs/fcn_drn-c-26-d8_8xb2-60k_voc12aug-512x512/iter_60000.pth'
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=None, frozen_stages=8, norm_eval=True),
    decode_head=dict(variant='basic', num_layers=8),
)
optim_wrapper = dict(
    paramwise_cfg=dict(
        bias_lr_mult=2.0,
        bias_decay_mult=0.0,
        custom_keys={'decode_head.conv_seg': dict(lr_mult=0.0, decay_mult=0.0)},
    )
)

# fyu/drn's released Cityscapes model DRN-D-105 (trained with the poly
# schedule, random scaling and rotation of the sibling paper config),
# evaluated as fyu/drn tests it: whole 1024x2048 image, single scale, the
# mean/std of fyu/drn datasets/cityscapes/info.json (see the DRN-D-22 fyu
# config); convert its DRNSeg checkpoint with --model drn_d_105.
_base_ = './fcn_drn-d-105-d8_8xb2-poly-92k_cityscapes-840x840.py'
model = dict(
    data_preprocessor=dict(
        mean=[
            0.29010095242892997 * 255,
            0.32808144844279574 * 255,
            0.28696394422942517 * 255,
        ],
        std=[
            0.1829540508368939 * 255,
            0.18656561047509476 * 255,
            0.18447508988480435 * 255,
        ],
    )
)

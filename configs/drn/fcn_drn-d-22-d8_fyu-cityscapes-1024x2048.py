# Evaluates fyu/drn's released Cityscapes model DRN-D-22 (a DRNSeg checkpoint,
# linked from the fyu/drn README) as fyu/drn's segment.py tests it: the whole
# 1024x2048 image, single scale, normalised with the mean/std of the training
# images in fyu/drn datasets/cityscapes/info.json (given there on a 0-1
# scale, here times 255) instead of the ImageNet statistics of the paper
# configs. Convert the checkpoint first:
#   python tools/model_converters/convert_checkpoint.py DRNSEG.pth \
#       checkpoints/fcn_drn-d-22-d8_fyu-cityscapes.pth --target mmseg --model drn_d_22
# It holds the backbone and DRNSeg's 1x1 classifier (decode_head.conv_seg).
# DRNSeg's fixed bilinear transposed convolution (x8) and MMSeg's bilinear
# resize give the same predictions (see
# tools/model_converters/convert_checkpoint.py). Training with this config
# fine-tunes as the sibling paper config does, with fyu/drn's normalisation.
_base_ = './fcn_drn-d-22-d8_8xb2-46k_cityscapes-896x896.py'
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

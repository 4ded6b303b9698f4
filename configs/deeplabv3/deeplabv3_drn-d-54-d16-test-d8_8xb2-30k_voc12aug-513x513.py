# Evaluation of deeplabv3_drn-d-54-d16_8xb2-30k_voc12aug-513x513.py
# at output stride 8 (Chen et al. 2017, Sec. 4.1 and 4.3: train at 16, infer
# at 8): the same weights (dilation adds no parameters) with the backbone's
# last stride removed and every later dilation of its output-stride-16 plan
# doubled (train_output_stride=16: levels 5-8 at 2, 4, 2, 2, so the trained
# function is sampled densely at every level), and the ASPP rates doubled to
# (12, 24, 36). For testing only, e.g.
#   python tools/test.py THIS_CONFIG work_dirs/<train run>/iter_*.pth
_base_ = './deeplabv3_drn-d-54-d16_8xb2-30k_voc12aug-513x513.py'
model = dict(
    backbone=dict(output_stride=8, train_output_stride=16),
    neck=dict(dilations=(1, 12, 24, 36)),
)

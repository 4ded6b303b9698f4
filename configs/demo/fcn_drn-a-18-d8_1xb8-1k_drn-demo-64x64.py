# DRN-A-18 on the embedded demo: ResNet-18 whose last two groups are dilated
# (2 and 4) instead of strided, the DRN paper's dilated ResNet, whose dilated
# 3x3 convolutions leave gridding artifacts. Same head, data and schedule as
# the DRN-C-26 demo config; only the backbone differs.
_base_ = './fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
model = dict(backbone=dict(type='DRN_A', depth=18))

# DRN-D-22 on the embedded demo: fyu/drn's variant whose stem, levels 1, 2, 7
# and 8 are plain conv-norm-act layers (degridding levels 7 and 8 without
# residual connections, as in DRN-C). Same head, data and schedule as the
# DRN-C-26 demo config; only the backbone differs.
_base_ = './fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
model = dict(backbone=dict(type='DRN_D', depth=22))

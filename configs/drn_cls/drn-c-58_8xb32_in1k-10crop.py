# DRN-C-58 on ImageNet-1k, evaluated with the DRN paper's 10-crop protocol
# (Sec. 5.1; see the base file). Training is that of the 1-crop config; the
# 10 crops are used by tools/test.py's --tta:
#   python tools/test.py configs/drn_cls/drn-c-58_8xb32_in1k-10crop.py CKPT --tta
# (without --tta the test is the 1-crop one).
_base_ = [
    './drn-c-58_8xb32_in1k.py',
    '../_base_/datasets/imagenet_bs32_drn-10crop.py',
]

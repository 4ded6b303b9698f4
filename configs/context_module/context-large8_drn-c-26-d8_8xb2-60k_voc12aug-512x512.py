# Stage 2 with the large context module (8 layers, widths 2C ... 32C,
# receptive field 67): the basic-module recipe otherwise.
_base_ = './context-basic8_drn-c-26-d8_8xb2-60k_voc12aug-512x512.py'
model = dict(decode_head=dict(variant='large'))

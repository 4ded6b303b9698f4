# The DRN paper's 10-crop ImageNet evaluation (Sec. 5.1): shorter side resized
# to 256, then the central and the four corner 224x224 crops and the mirror
# images of these five, ten views in all. mmpretrain's AverageClsScoreTTA
# averages the ten views' class scores (softmax probabilities) per image, the
# usual multi-crop rule (Krizhevsky et al., He et al.); the paper's wording
# ("accuracy is averaged over these 10 crops") does not say more. Used by
# `tools/test.py CONFIG CHECKPOINT --tta`, which swaps these in for the 1-crop
# test pipeline and model; views are ordered crop-major: centre, centre
# flipped, top-left, top-left flipped, ...
tta_model = dict(type='AverageClsScoreTTA')
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='FixedCrop', crop_size=224, position='center'),
                dict(type='FixedCrop', crop_size=224, position='top_left'),
                dict(type='FixedCrop', crop_size=224, position='top_right'),
                dict(type='FixedCrop', crop_size=224, position='bottom_left'),
                dict(type='FixedCrop', crop_size=224, position='bottom_right'),
            ],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='PackInputs')],
        ],
    ),
]

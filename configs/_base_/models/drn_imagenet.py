# A DRN classifier for ImageNet-1k (Yu et al., CVPR 2017, Sec. 2): the final
# DRN feature map (28x28 for a 224x224 input) -> global average pooling -> a
# linear (1x1) classifier. The backbone returns only its last level here.
custom_imports = dict(imports=['mmdrn'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DRN_C', depth=26, out_indices=(7,)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ),
)

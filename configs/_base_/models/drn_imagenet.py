# A DRN classifier for ImageNet-1k (Yu et al., CVPR 2017, Sec. 2): the final
# DRN feature map (28x28 for a 224x224 input) -> global average pooling -> a
# 1x1 convolution to the class scores, which is mmdrn's CAMHead (the same
# head then gives the class activation maps of Sec. 3; boxes are off for
# classification). The backbone returns only its last level here. The head's
# classifier keys (head.fc.*) match the official checkpoints' fc.*.
custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='DRN_C', depth=26, out_indices=(7,)),
    head=dict(
        type='CAMHead',
        num_classes=1000,
        in_channels=512,
        with_boxes=False,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ),
)

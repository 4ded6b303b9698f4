# Weakly-supervised object localization on ImageNet with a DRN-C-26
# classifier, the DRN paper's Object Localization experiment (Sec. 3 and
# 5.2): no fine-tuning; the 1x1 classifier is applied at every position of
# the 28x28 final map, a softmax per pixel gives class probability maps, and
# the box of the predicted class is the tightest box around the pixels whose
# argmax is that class with probability > t (t = 0.1: the paper gives no
# value, see mmdrn.heads.cam). A box is correct at IoU > 0.5 with a
# ground-truth box of the image's class (top-1 localization).
# Evaluation only, on a classification checkpoint of drn_cls/:
#   python tools/test.py configs/cam/cam-loc_drn-c-26_8xb32_in1k.py CKPT
# The image is resized to 224x224 (no crop), so boxes map back to the
# original image exactly; ground-truth boxes are ImageNet's val XML files
# (ILSVRC2012_bbox_val) in data/imagenet/bbox_val/.
_base_ = '../drn_cls/drn-c-26_8xb32_in1k.py'
model = dict(head=dict(with_boxes=True))
loc_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=loc_pipeline))
test_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='ImageNetLocMetric', ann_dir='data/imagenet/bbox_val'),
]

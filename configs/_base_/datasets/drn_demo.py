# The embedded demo's data: street-like scenes drawn by mmdrn itself
# (mmdrn/datasets/demo_scenes.py): 1000 training and 100 validation scenes of
# 64x64 with 7 classes. `generate=True` writes them to data_root on first use
# (deterministic, a few seconds), so nothing is downloaded.
dataset_type = 'DRNDemoDataset'
data_root = 'data/drn_demo'
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    # Decoding 64x64 PNGs costs next to nothing: no worker processes
    # competing with training for a laptop's cores.
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    # CheckedDataset: a broken training sample names its file and index, and
    # label maps are checked against the classes, under any tool
    # (mmdrn.openmmlab.datasets.checks; mmdrn's tools/train.py also wraps the
    # validation and test datasets).
    dataset=dict(
        type='CheckedDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            generate=True,
            data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
            pipeline=train_pipeline,
        ),
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        generate=True,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

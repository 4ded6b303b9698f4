# ImageNet-1k with the DRN paper's training augmentation (Sec. 5.1): "scale
# and aspect ratio augmentation as in Szegedy et al. and color perturbation
# as in Krizhevsky et al. and Howard", following He et al.'s procedure.
# - RandomResizedCrop 224 with mmpretrain's defaults, area 8%-100% and aspect
#   ratio 3/4-4/3 (Szegedy et al.);
# - colour perturbation: brightness/contrast/saturation jitter 0.4 (Howard)
#   and AlexNet PCA lighting noise with std 0.1 (Krizhevsky et al.). The
#   paper gives no magnitudes; these are those of fb.resnet.torch, the
#   reference implementation of He et al.'s ImageNet recipe. Images are BGR
#   in the pipeline (the data preprocessor converts to RGB), so the PCA
#   eigenvalues (x255) and eigenvector rows are listed in BGR order.
# Evaluation (1-crop): shorter side resized to 256, central 224x224 crop.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'
pca_eigval = [55.4625, 4.7940, 1.1475]
pca_eigvec = [
    [-0.5836, -0.6948, 0.4203],
    [-0.5808, -0.0045, -0.8140],
    [-0.5675, 0.7192, 0.4009],
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(
        type='Lighting',
        eigval=pca_eigval,
        eigvec=pca_eigvec,
        alphastd=0.1,
        to_rgb=False,
    ),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

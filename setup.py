"""Packaging for mmdrn. The stack's versions live in requirements/stack.txt."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# Built for the local CUDA setup by scripts/install.sh, not resolved by pip
# (the same convention as OpenMMLab's own packages).
BUILD_SPECIFIC = ('torch', 'torchvision', 'mmcv')


def read_requirements(name: str) -> list:
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


def stack_requirements() -> list:
    return [
        req
        for req in read_requirements('stack.txt')
        if req.split('==')[0] not in BUILD_SPECIFIC
    ]


def version() -> str:
    scope = {}
    exec((HERE / 'mmdrn' / 'version.py').read_text(), scope)
    return scope['__version__']


setup(
    name='mmdrn',
    version=version(),
    description='Dilated Residual Networks for MMSegmentation, mmpretrain and timm',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=('mmdrn', 'mmdrn.*')),
    include_package_data=True,
    install_requires=stack_requirements(),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'stack': [
            req
            for req in read_requirements('stack.txt')
            if req.split('==')[0] in BUILD_SPECIFIC
        ],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)

"""Packaging for mmdrn.

``pip install mmdrn`` needs only torch and timm (the timm models, weight
conversion, the inference fast path); ``mmdrn[openmmlab]`` adds the
OpenMMLab stack for the configs and tools. Requirements are ranges
(``requirements/{runtime,openmmlab,tests}.txt``); the exact versions the
install script uses are in ``requirements/stack.txt``.

As in OpenMMLab's own packages, ``configs/``, ``tools/`` and
``model-index.yml`` are placed in ``mmdrn/.mim/`` so that openmim finds them in
an installed mmdrn (``mim search/train/test/download mmdrn``): symlinks for an
editable install, copies when a wheel or an sdist is built.
"""

import os
import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>``, comments dropped."""
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


def version() -> str:
    scope = {}
    exec((HERE / 'mmdrn' / 'version.py').read_text(), scope)
    return scope['__version__']


def mim_mode(argv: list) -> str:
    """How ``mmdrn/.mim`` is made for this setup command: link, copy or none.

    Editable installs (``develop``, PEP 660's ``editable_wheel``) link to the
    checkout so edited configs take effect; built distributions get copies.
    Metadata-only commands (``egg_info``, ``dist_info``) leave it alone.
    """
    if 'develop' in argv or 'editable_wheel' in argv:
        return 'copy' if os.name == 'nt' else 'link'
    if {'sdist', 'bdist_wheel', 'build', 'build_py', 'install'} & set(argv):
        return 'copy'
    return 'none'


def add_mim_extension(mode: str, root: Path = HERE) -> None:
    """Link or copy ``configs/``, ``tools/``, ``model-index.yml`` into ``.mim``.

    A source missing from the tree (building a wheel from an sdist, which
    carries the copies already) leaves the existing entry as it is.
    """
    if mode == 'none':
        return
    mim = root / 'mmdrn' / '.mim'
    mim.mkdir(exist_ok=True)
    for name in MIM_FILES:
        src, dst = root / name, mim / name
        if not src.exists():
            continue
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.is_dir():
            shutil.rmtree(dst)
        if mode == 'link':
            dst.symlink_to(os.path.relpath(src, mim))
        elif src.is_dir():
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc')
            )
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension(mim_mode(sys.argv[1:]))
    setup(
        name='mmdrn',
        version=version(),
        description=(
            'Dilated Residual Networks (DRN-A/B/C/D) for timm, '
            'MMSegmentation and mmpretrain'
        ),
        long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
        long_description_content_type='text/markdown',
        author='mmdrn contributors',
        license='Apache-2.0',
        license_files=['LICENSE', 'NOTICE'],
        project_urls={
            'Paper': 'https://arxiv.org/abs/1705.09914',
            'Reference implementation': 'https://github.com/fyu/drn',
        },
        keywords='dilated residual networks, semantic segmentation, timm',
        python_requires='>=3.9',
        packages=find_packages(include=('mmdrn', 'mmdrn.*')),
        # .mim (configs, tools, model-index.yml) is listed in MANIFEST.in.
        include_package_data=True,
        package_data={'mmdrn': ['py.typed']},
        zip_safe=False,
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            'openmmlab': read_requirements('openmmlab.txt'),
            'tests': read_requirements('tests.txt'),
            'deploy': read_requirements('deploy.txt'),
        },
        classifiers=[
            'Development Status :: 3 - Alpha',
            'Intended Audience :: Developers',
            'Intended Audience :: Science/Research',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3 :: Only',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
            'Topic :: Scientific/Engineering :: Image Recognition',
            'Typing :: Typed',
        ],
    )

"""A benchmark case of DRN-D-22 on a 32x32 input, with fields overridden."""

import pytest


@pytest.fixture
def make_case():
    def make(**kw):
        case = dict(
            spec='drn_d_22',
            role='model',
            task='infer',
            variant='eager',
            dtype='fp32',
            memory_format='contiguous',
            with_cp=False,
            shape=[32, 32],
            batch=1,
            device='cpu',
            warmup=1,
            repeat=2,
            max_seconds=30.0,
            count_flops=False,
            threads=None,
        )
        case.update(kw)
        return case

    return make

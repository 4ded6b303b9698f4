"""The context-module configs start as exactly "front-end + identity".

Yu & Koltun initialise the context module as the identity so that training
starts from the front-end's predictions. With mmdrn's ContextHead nothing
follows the module (its closing 1x1 layer gives the logits), so a freshly
built segmentor must return the front-end's class scores as the module's
ReLUs pass them, ``relu(conv_seg(backbone(x)[-1]))``.
"""

from pathlib import Path

import pytest
import torch
from _config_utils import CONFIG_DIR, build_model, config_id, load

import mmdrn  # noqa: F401  (registers the DRN components)

CONTEXT_CONFIGS = sorted((CONFIG_DIR / 'context_module').glob('context-*.py'))


def test_every_context_config_is_listed():
    assert len(CONTEXT_CONFIGS) == 3


@pytest.mark.parametrize('path', CONTEXT_CONFIGS, ids=config_id)
def test_fresh_context_model_computes_the_front_ends_truncated_scores(path: Path):
    cfg = load(path)
    # The large module's identity is exact without its init noise.
    cfg.model.decode_head.init_noise = 0.0
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    model.eval()
    head = model.decode_head
    # A non-zero classifier bias makes the check independent of the init.
    torch.nn.init.normal_(head.conv_seg.bias, std=0.1)
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        logits = model(x, mode='tensor')
        scores = head.conv_seg(model.backbone(x)[-1])
    assert logits.shape == scores.shape == (2, cfg.model.decode_head.num_classes, 5, 5)
    # the check is not vacuous: the ReLUs cut real negative scores
    assert (scores < 0).any() and (scores > 0).any()
    torch.testing.assert_close(logits, scores.relu(), rtol=1e-5, atol=1e-6)


def test_nothing_follows_the_module():
    # The logits are the module's closing 1x1 convolution: the head has the
    # front-end classifier and the module, and no other parameters.
    cfg = load(CONTEXT_CONFIGS[0])
    head = build_model(cfg).decode_head
    names = {name.split('.')[0] for name, _ in head.named_parameters()}
    assert names == {'conv_seg', 'context'}
    last = head.context.convs()[-1]
    assert last.kernel_size == (1, 1)
    assert last.out_channels == cfg.model.decode_head.num_classes

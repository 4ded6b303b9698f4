"""Folding batch normalization into the preceding convolution.

An eval-mode ``BatchNorm2d`` is a per-channel affine map; when it reads the
output of a ``Conv2d`` that nothing else reads, torch's
``fuse_conv_bn_weights`` merges it into the convolution and the norm becomes
an ``nn.Identity``. Pairs are found from the data flow (:mod:`torch.fx`,
module by module), not from names, so pre-activation blocks (``bn -> conv``)
and convolutions whose raw output is used elsewhere are left alone; a module
that cannot be traced (an MMSegmentation ``EncoderDecoder``, whose
``forward`` branches on ``mode``) is searched child by child.
"""

import copy
import warnings
from collections import Counter
from typing import Dict, List, Tuple

import torch
import torch.fx
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = ['find_conv_bn_pairs', 'fold_batchnorm']

# Norms whose forward is torch's own are exactly the affine map above (this
# includes mmengine's _BatchNormXd, what revert_sync_batchnorm builds); a
# subclass with its own forward may do more (timm's BatchNormAct2d also
# applies an activation), so it is not folded.
_NORM_FORWARDS = (_BatchNorm.forward, nn.SyncBatchNorm.forward)


class _LeafTracer(torch.fx.Tracer):
    """fx tracer that stops at every convolution and norm layer."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (nn.Conv2d, _BatchNorm)):
            return True
        return super().is_leaf_module(m, qualname)


def _is_foldable_norm(m: nn.Module) -> bool:
    return (
        isinstance(m, _BatchNorm)
        and type(m).forward in _NORM_FORWARDS
        and m.running_mean is not None
    )


def _pairs_in_graph(module: nn.Module, graph: torch.fx.Graph) -> Dict[str, str]:
    calls = Counter(node.target for node in graph.nodes if node.op == 'call_module')
    pairs = {}
    for node in graph.nodes:
        if node.op != 'call_module' or len(node.args) != 1 or node.kwargs:
            continue
        norm = module.get_submodule(node.target)
        source = node.args[0]
        if not (
            _is_foldable_norm(norm)
            and isinstance(source, torch.fx.Node)
            and source.op == 'call_module'
            # ConvTranspose2d is no Conv2d subclass; its weight layout differs
            and isinstance(module.get_submodule(source.target), nn.Conv2d)
            and len(source.users) == 1
            # a module called twice would be folded for one call site only
            and calls[source.target] == 1
            and calls[node.target] == 1
        ):
            continue
        pairs[source.target] = node.target
    return pairs


def _collect(module: nn.Module, prefix: str, pairs: Dict[str, str]) -> None:
    if isinstance(module, (nn.Conv2d, _BatchNorm)):
        return
    try:
        with warnings.catch_warnings():
            # tracing runs forward() on proxies; its warnings are not the user's
            warnings.simplefilter('ignore')
            graph = _LeafTracer().trace(module)
    except Exception:  # noqa: BLE001  (any failure: search the children instead)
        for name, child in module.named_children():
            _collect(child, f'{prefix}{name}.', pairs)
        return
    for conv, norm in _pairs_in_graph(module, graph).items():
        pairs[prefix + conv] = prefix + norm


def find_conv_bn_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """Convolution / batch-norm pairs of ``model`` that can be folded.

    Args:
        model (nn.Module): Any model.

    Returns:
        list[tuple[str, str]]: ``(conv name, norm name)`` pairs, as in
        ``model.named_modules()``, in name order.

    Example:
        >>> block = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        >>> find_conv_bn_pairs(block)
        [('0', '1')]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be an nn.Module, got {type(model).__name__}')
    pairs: Dict[str, str] = {}
    _collect(model, '', pairs)
    return sorted(pairs.items())


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, norm: _BatchNorm) -> None:
    # torch's own fusion arithmetic, in float64 so that the folded fp32
    # weights differ from the exact product by one rounding only
    weight, bias = fuse_conv_bn_weights(
        *(None if t is None else t.double() for t in (conv.weight, conv.bias)),
        norm.running_mean.double(),
        norm.running_var.double(),
        norm.eps,
        *(None if t is None else t.double() for t in (norm.weight, norm.bias)),
    )
    conv.weight.copy_(weight)
    if conv.bias is None:
        conv.bias = nn.Parameter(
            bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad
        )
    else:
        conv.bias.copy_(bias)


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every eval-mode batch norm that follows a convolution into it.

    The result is for inference only: the folded layers no longer
    normalise batches in training. Which pairs are folded: see the module
    docstring.

    Args:
        model (nn.Module): Any model, e.g. a timm DRN, an mmdrn backbone or
            an MMSegmentation ``EncoderDecoder``.
        inplace (bool): Change ``model`` itself instead of a deep copy.
            Default: False.

    Returns:
        nn.Module: The folded model (``model`` itself when ``inplace``), in
        eval mode, with the folded ``(conv, norm)`` names in its
        ``folded_bn_pairs`` attribute.

    Example:
        >>> block = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).eval()
        >>> folded = fold_batchnorm(block)
        >>> type(folded[1]).__name__, folded.folded_bn_pairs
        ('Identity', [('0', '1')])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be an nn.Module, got {type(model).__name__}')
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    pairs = find_conv_bn_pairs(model)
    for conv_name, norm_name in pairs:
        _fold_pair(model.get_submodule(conv_name), model.get_submodule(norm_name))
        parent, _, attr = norm_name.rpartition('.')
        setattr(model.get_submodule(parent), attr, nn.Identity())
    model.folded_bn_pairs = pairs
    return model

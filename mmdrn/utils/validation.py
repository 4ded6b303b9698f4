"""Argument checks shared by every mmdrn component (plain Python and PyTorch).

One rule for all of them: a value of the wrong type is a ``TypeError``, a
value out of range a ``ValueError``, and each message names the argument and
what is allowed. ``bool`` is never accepted where a number is expected
(``True`` channels or ``True`` as a threshold is always a config mistake,
even though Python counts ``bool`` as an ``int``).
"""

import numbers
from typing import Any, Sequence, Tuple

from torch import Tensor

__all__ = [
    'format_names',
    'check_choice',
    'check_float',
    'check_in_index',
    'check_int',
    'check_level_indices',
    'check_threshold',
    'select_input',
]


def check_choice(name: str, value: Any, allowed: Sequence) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError``.

    The message shows ``allowed`` as given (a list or a tuple).
    """
    if value not in allowed:
        raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
    return value


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int ``>= minimum``, else raise.

    Args:
        name (str): Argument name used in the error message.
        value (Any): The value to check.
        minimum (int): Smallest allowed value. Default: 1.

    Returns:
        int: ``value`` unchanged.
    """
    # bool is an int subclass, but True channels is always a config mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            f'{name} must be an int >= {minimum}, got {value!r} '
            f'of type {type(value).__name__}'
        )
    if value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value}')
    return value


def check_float(name: str, value: Any, allowed: str) -> float:
    """Return ``value`` as a float if it is a real number, else raise.

    Args:
        name (str): Argument name used in the error message.
        value (Any): The value to check.
        allowed (str): The allowed range, for the message (e.g. ``'[0, 1)'``).

    Returns:
        float: ``float(value)``; the caller checks the range.
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(
            f'{name} must be a float in {allowed}, got {value!r} '
            f'of type {type(value).__name__}'
        )
    return float(value)


def check_threshold(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a real number in ``[0, 1)``.

    Args:
        name (str): Argument name used in the error message.
        value (Any): The value to check (a probability threshold).

    Returns:
        float: ``float(value)``.
    """
    value = check_float(name, value, '[0, 1)')
    if not 0.0 <= value < 1.0:
        raise ValueError(f'{name} must be in [0, 1), got {value}')
    return value


def check_level_indices(name: str, indices: Any, num_levels: int) -> Tuple[int, ...]:
    """The one rule for choosing backbone levels (``out_indices``, ``indices``).

    Read as timm's models read ``indices`` (None: every level, an int ``n``:
    the last ``n`` levels, a list/tuple: those levels, negative ones counted
    from the end), but a wrong value raises an error naming what is allowed,
    and a list must name the levels in network order, each once, since they
    are returned in that order. (timm's own ``feature_take_indices`` is not
    public: timm 1.0.13 to 1.0.31 export it from neither ``timm.models`` nor
    ``timm.layers``.)

    Args:
        name (str): Argument name used in the error message.
        indices (Any): The value to check.
        num_levels (int): Number of levels of the backbone.

    Returns:
        tuple[int]: Increasing level indices in ``0..num_levels - 1``.

    Example:
        >>> check_level_indices('out_indices', 3, 8)
        (5, 6, 7)
        >>> check_level_indices('out_indices', (3, -1), 8)
        (3, 7)
    """
    allowed = (
        f'an int in 1..{num_levels} (the last n levels) or a non-empty list/tuple '
        f'of increasing level indices in {list(range(num_levels))} (negative '
        f'counts from the end)'
    )
    if indices is None:
        return tuple(range(num_levels))
    is_int = isinstance(indices, int) and not isinstance(indices, bool)
    is_list = isinstance(indices, (list, tuple)) and all(
        isinstance(i, int) and not isinstance(i, bool) for i in indices
    )
    if not (is_int or is_list):
        raise TypeError(f'{name} must be {allowed}, got {indices!r}')
    if (is_int and not 1 <= indices <= num_levels) or (
        is_list
        and (not indices or not all(-num_levels <= i < num_levels for i in indices))
    ):
        raise ValueError(f'{name} must be {allowed}, got {indices!r}')
    if is_int:
        take = tuple(range(num_levels - indices, num_levels))
    else:
        take = tuple(i % num_levels for i in indices)
    if list(take) != sorted(set(take)):
        raise ValueError(
            f'{name} must be {allowed}; {indices!r} names the levels {list(take)}, '
            f'not increasing (outputs come in network order)'
        )
    return take


def check_in_index(in_index: Any) -> int:
    """Return ``in_index`` if it is an int, else raise ``TypeError``.

    Its range can only be checked against the backbone's outputs, which
    :func:`select_input` does at forward time.
    """
    if not isinstance(in_index, int) or isinstance(in_index, bool):
        raise TypeError(
            f'in_index must be an int (the position of one backbone output, '
            f'negative counts from the end), got {in_index!r}'
        )
    return in_index


def select_input(
    inputs: Sequence[Tensor], in_index: int, in_channels: int
) -> Tuple[Tuple[Tensor, ...], int]:
    """Pick the backbone output a neck works on.

    Args:
        inputs (Sequence[Tensor]): The backbone's feature maps, each
            ``(N, C_i, H_i, W_i)``.
        in_index (int): Position of the one to use; negative counts from
            the end.
        in_channels (int): Channels the neck was built for.

    Returns:
        tuple: ``(inputs as a tuple, non-negative index)``.
    """
    if not isinstance(inputs, (tuple, list)):
        raise TypeError(
            'a neck takes the backbone outputs as a tuple or list of '
            f'tensors (wrap a single map as (x,)), got {type(inputs).__name__}'
        )
    num = len(inputs)
    if not -num <= in_index < num:
        allowed = f'{-num} to {num - 1}' if num else 'none (inputs is empty)'
        raise ValueError(
            f'in_index={in_index} is out of range for {num} backbone '
            f'outputs; allowed: {allowed}'
        )
    not_tensors = [i for i, x in enumerate(inputs) if not isinstance(x, Tensor)]
    if not_tensors:
        raise TypeError(
            f'a neck takes the backbone outputs as a tuple or list of tensors; '
            f'inputs[{not_tensors[0]}] is a {type(inputs[not_tensors[0]]).__name__}'
        )
    index = in_index % num
    x = inputs[index]
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f'inputs[{in_index}] must have shape (N, in_channels={in_channels}, '
            f'H, W), got {tuple(x.shape)}'
        )
    return tuple(inputs), index


def format_names(keys: Sequence[str], limit: int = 12) -> str:
    """The first ``limit`` of ``keys``, comma-separated, with the count if cut."""
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')

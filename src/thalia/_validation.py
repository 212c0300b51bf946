"""Input checks for the public boundary: errors name the parameter, the expected form and the value.

Every public function of thalia validates what a user hands it with these helpers, so that a wrong
shape, a NaN or a misspelt option fails at once with a ``ValueError`` that says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"an array of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"Invalid value for {name!r}: allowed {listed}, got {value!r}.")
    return value


def check_names(what: str, names: Iterable[str], known: Sequence[str]) -> None:
    """Raise a ValueError for any name in ``names`` that is not in ``known``."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"Unknown {what} {', '.join(repr(u) for u in unknown)}: expected one of "
            f"{', '.join(repr(k) for k in known)}."
        )


def as_float_tensor(
    name: str,
    value: Any,
    shape: tuple[int, ...] | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    broadcast: bool = False,
) -> torch.Tensor:
    """Convert ``value`` to a finite float tensor of the expected shape, or raise ValueError.

    Parameters
    ----------
    name : str
        Name of the argument, used in the error message.
    value : array_like
        The user's value.
    shape : tuple of int, optional
        Required shape. With ``broadcast=True`` any shape that broadcasts to it is accepted.
    """
    try:
        if isinstance(value, torch.Tensor):
            tensor = value.to(dtype=dtype, device=device)
        else:
            array = np.asarray(value, dtype=float)
            tensor = torch.as_tensor(array if array.flags.writeable else array.copy(), dtype=dtype, device=device)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Invalid value for {name!r}: expected a real array"
            f"{'' if shape is None else f' of shape {shape}'}, got {_describe(value)}."
        ) from err
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        if broadcast:
            try:
                tensor = torch.broadcast_to(tensor, shape).clone()
            except RuntimeError as err:
                raise ValueError(
                    f"Invalid shape for {name!r}: expected {tuple(shape)} (or broadcastable), "
                    f"got {tuple(tensor.shape)}."
                ) from err
        else:
            raise ValueError(f"Invalid shape for {name!r}: expected {tuple(shape)}, got {tuple(tensor.shape)}.")
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(
            f"Invalid value for {name!r}: expected finite numbers, got {bad} non-finite "
            f"(NaN or inf) entr{'y' if bad == 1 else 'ies'}."
        )
    return tensor


def check_frequencies(name: str, freqs: Any) -> torch.Tensor:
    """Frequencies in Hz: a non-empty 1-D array of finite, strictly positive values."""
    tensor = as_float_tensor(name, freqs)
    if tensor.ndim == 0:
        tensor = tensor.reshape(1)
    if tensor.ndim != 1 or tensor.numel() == 0:
        raise ValueError(
            f"Invalid shape for {name!r}: expected a non-empty 1-D array of frequencies in Hz, "
            f"got shape {tuple(tensor.shape)}."
        )
    if bool((tensor <= 0).any()):
        raise ValueError(
            f"Invalid value for {name!r}: expected frequencies > 0 Hz, got minimum {float(tensor.min()):g} Hz."
        )
    return tensor


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"Invalid value for {name!r}: expected an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Invalid value for {name!r}: expected a positive number, got {value!r}.") from err
    ok = np.isfinite(number) and (number >= 0 if allow_zero else number > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Invalid value for {name!r}: expected a finite number {bound}, got {value!r}.")
    return number

"""ParamSpec / ParamSpace / ParameterSet: names, shapes, priors, packing to and from vectors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from thalia._validation import as_float_tensor, check_names

DTYPE = torch.float64


@dataclass(frozen=True, eq=False)
class ParamSpec:
    """One named parameter.

    Parameters
    ----------
    name : str
        Parameter name (as in the model's spec, e.g. ``"H"``, ``"CT"``).
    shape : tuple of int
        Array shape (``()`` for a scalar).
    prior_mean, prior_var : array_like
        Gaussian prior mean and variance, broadcastable to ``shape``. Variance 0 fixes an entry.
    doc : str
        One line: what the parameter does, its transform and units.
    order : {"C", "F"}
        Packing order of the entries: row-major ("C", the default) or column-major ("F", MATLAB's and
        SPM's ``spm_vec`` order).
    labels : tuple of str, optional
        One label per entry in packing order (e.g. SPM's ``"T(1,2)"``); default ``name[i,j]``.
    """

    name: str
    shape: tuple[int, ...]
    prior_mean: np.ndarray
    prior_var: np.ndarray
    doc: str = ""
    units: str = ""
    order: str = "C"
    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.order not in ("C", "F"):
            raise ValueError(f"Invalid value for 'order' of {self.name!r}: allowed 'C', 'F', got {self.order!r}.")
        if self.labels is not None and len(self.labels) != self.size:
            raise ValueError(f"Parameter {self.name!r}: {len(self.labels)} labels for {self.size} entries.")
        mean = np.broadcast_to(np.asarray(self.prior_mean, dtype=float), self.shape).copy()
        var = np.broadcast_to(np.asarray(self.prior_var, dtype=float), self.shape).copy()
        if (var < 0).any() or not np.isfinite(var).all() or not np.isfinite(mean).all():
            raise ValueError(f"Prior of {self.name!r}: variances must be finite and >= 0.")
        object.__setattr__(self, "prior_mean", mean)
        object.__setattr__(self, "prior_var", var)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=int))

    def flatten(self, value: torch.Tensor) -> torch.Tensor:
        """Entries of ``value`` (shape ``(*lead, *shape)``) as ``(*lead, size)`` in packing order."""
        lead = value.shape[: value.ndim - len(self.shape)]
        if self.order == "F" and len(self.shape) > 1:
            k = len(lead)
            value = value.permute(*range(k), *reversed(range(k, value.ndim)))
        return value.reshape((*lead, self.size))

    def unflatten(self, flat: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`flatten`: ``(*lead, size)`` → ``(*lead, *shape)``."""
        lead = flat.shape[:-1]
        if self.order == "F" and len(self.shape) > 1:
            k = len(lead)
            value = flat.reshape((*lead, *reversed(self.shape)))
            return value.permute(*range(k), *reversed(range(k, value.ndim)))
        return flat.reshape((*lead, *self.shape))

    def unflatten_numpy(self, flat: np.ndarray) -> np.ndarray:
        """NumPy version of :meth:`unflatten` for one vector of ``size`` entries."""
        return np.asarray(flat, dtype=float).reshape(self.shape, order=self.order)

    def entry_labels(self) -> list[str]:
        """One label per entry, in packing order."""
        if self.labels is not None:
            return list(self.labels)
        if self.shape == ():
            return [self.name]
        return [f"{self.name}[{','.join(str(i) for i in idx)}]" for idx in self.indices()]

    def indices(self) -> list[tuple[int, ...]]:
        """The index tuple of every entry, in packing order."""
        if self.order == "F":
            return [tuple(reversed(idx)) for idx in np.ndindex(*reversed(self.shape))]
        return list(np.ndindex(*self.shape))


@dataclass(frozen=True, eq=False)
class ParamSpace:
    """An ordered collection of :class:`ParamSpec` — the schema of a model's parameters."""

    specs: tuple[ParamSpec, ...]
    _offsets: dict[str, slice] = field(init=False, repr=False, compare=False)
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offsets, start = {}, 0
        for spec in self.specs:
            if spec.name in offsets:
                raise ValueError(f"Duplicate parameter name {spec.name!r}.")
            offsets[spec.name] = slice(start, start + spec.size)
            start += spec.size
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "_names", tuple(s.name for s in self.specs))

    # -- schema ----------------------------------------------------------------------------------
    def compatible(self, other: ParamSpace) -> bool:
        """Same names with the same shapes and packing orders, in the same order (priors may differ)."""
        return [(s.name, s.shape, s.order) for s in self.specs] == [(s.name, s.shape, s.order) for s in other.specs]

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def size(self) -> int:
        return sum(s.size for s in self.specs)

    def __getitem__(self, name: str) -> ParamSpec:
        check_names("parameter", [name], self.names)
        return self.specs[self.names.index(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._offsets

    def slice_of(self, name: str) -> slice:
        """Where ``name`` lives in the packed vector."""
        check_names("parameter", [name], self.names)
        return self._offsets[name]

    def vector_labels(self) -> list[str]:
        """One label per packed entry, e.g. ``H[1,0,0]`` (or the spec's own labels), in packing order."""
        return [label for spec in self.specs for label in spec.entry_labels()]

    # -- priors ----------------------------------------------------------------------------------
    def prior_mean(self) -> ParameterSet:
        return ParameterSet(self, {s.name: torch.as_tensor(s.prior_mean, dtype=DTYPE) for s in self.specs})

    def prior_mean_vector(self) -> torch.Tensor:
        return torch.cat([s.flatten(torch.as_tensor(s.prior_mean, dtype=DTYPE)) for s in self.specs])

    def prior_var_vector(self) -> torch.Tensor:
        return torch.cat([s.flatten(torch.as_tensor(s.prior_var, dtype=DTYPE)) for s in self.specs])

    def free_mask(self) -> torch.Tensor:
        """Boolean vector: True where the prior variance is > 0 (the fitted entries)."""
        return self.prior_var_vector() > 0

    # -- packing ---------------------------------------------------------------------------------
    def pack(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate a full name → tensor mapping into a vector (differentiable)."""
        return torch.cat([s.flatten(values[s.name]) for s in self.specs], dim=-1)

    def unpack(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a vector (last dimension = :attr:`size`) into a name → tensor dict (differentiable).

        Leading dimensions are kept, so a batch of vectors unpacks to batched arrays.
        """
        if vector.shape[-1] != self.size:
            raise ValueError(
                f"Invalid shape for 'vector': expected last dimension {self.size}, got shape {tuple(vector.shape)}."
            )
        return {s.name: s.unflatten(vector[..., self._offsets[s.name]]) for s in self.specs}

    def validate(self, values: Mapping[str, Any], *, partial: bool = False) -> dict[str, torch.Tensor]:
        """Check names, shapes and finiteness; return float64 tensors.

        With ``partial=True`` missing names are allowed (for updates); otherwise all are required.
        """
        if not isinstance(values, Mapping):
            raise ValueError(
                f"Invalid value for 'parameters': expected a mapping of name -> array, got {type(values).__name__}."
            )
        check_names("parameter", values.keys(), self.names)
        if not partial:
            missing = [n for n in self.names if n not in values]
            if missing:
                raise ValueError(f"Missing parameter(s) {', '.join(repr(m) for m in missing)}.")
        return {
            name: as_float_tensor(f"P[{name!r}]", value, self[name].shape, broadcast=True)
            for name, value in values.items()
        }


class ParameterSet(Mapping[str, torch.Tensor]):
    """Values (float64 tensors, log scale) for every parameter of a :class:`ParamSpace`.

    A read-only mapping name → tensor; :meth:`replace` returns an updated copy, so one default set
    can be shared safely.
    """

    def __init__(self, space: ParamSpace, values: Mapping[str, Any]):
        self.space = space
        self._values = space.validate(values)

    # Mapping protocol
    def __getitem__(self, name: str) -> torch.Tensor:
        check_names("parameter", [name], self.space.names)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.space.names)

    def __len__(self) -> int:
        return len(self.space.names)

    def __repr__(self) -> str:
        return f"ParameterSet({len(self)} arrays, {self.space.size} numbers)"

    def replace(self, **updates: Any) -> ParameterSet:
        """A copy with some arrays replaced (validated; unknown names raise)."""
        checked = self.space.validate(updates, partial=True)
        return ParameterSet(self.space, {**self._values, **checked})

    def to_vector(self) -> torch.Tensor:
        return self.space.pack(self._values)

    @classmethod
    def from_vector(cls, space: ParamSpace, vector: Any) -> ParameterSet:
        tensor = as_float_tensor("vector", vector, (space.size,))
        return cls(space, space.unpack(tensor))

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Plain NumPy copies, name → array."""
        return {name: self._values[name].detach().cpu().numpy().copy() for name in self.space.names}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The name → tensor dict (for the pure model functions)."""
        return dict(self._values)

"""SPM-style parameter tables: ``spm_vec`` names, column-major packing and the ``*_priors.csv`` format.

SPM stores a model's parameters as a struct of arrays (and cell arrays of matrices); ``spm_vec``
flattens it field by field, each array column-major, each cell array element by element. An entry
is named by its field and 1-based MATLAB index: ``T(1,2)``, ``H(2,3)``, ``A{1,2}(1,1)`` (element 2
of the cell array ``A``). thalia stores

* an array field of SPM shape ``(r, c, ...)`` as a tensor of that shape, packed column-major
  (:class:`~thalia.params.ParamSpec` ``order="F"``);
* a cell array field ``A{1..k}`` of ``(r, c)`` matrices as one ``(r, c, k)`` tensor, also column-major,
  so that packing reproduces ``spm_vec`` exactly and a parameter vector moves between SPM and thalia
  unchanged.

A table (CSV) has a ``name`` column of such labels and one column per quantity: ``pE`` / ``pC_diag``
(prior mean and variance), ``Ep`` / ``Cp`` posterior columns, or any other.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thalia.params import ParameterSet, ParamSpace, ParamSpec

_LABEL = re.compile(r"^([A-Za-z_]\w*)(?:\{1,(\d+)\})?\(([\d,]+)\)$")

#: Column aliases accepted by :func:`read_spm_parameters` (SPM names and the reference-table names).
COLUMN_ALIASES = {
    "pE": ("pE", "prior_mean"),
    "prior_mean": ("prior_mean", "pE"),
    "pC": ("pC_diag", "prior_var", "pC"),
    "pC_diag": ("pC_diag", "prior_var", "pC"),
    "prior_var": ("prior_var", "pC_diag", "pC"),
    "Ep": ("Ep", "posterior_mean"),
    "posterior_mean": ("posterior_mean", "Ep"),
    "Cp": ("Cp_diag", "posterior_var", "Cp"),
    "posterior_var": ("posterior_var", "Cp_diag", "Cp"),
}


def matlab_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """MATLAB's view of a shape: at least two dimensions, trailing singletons beyond two dropped."""
    dims = list(shape) + [1] * max(0, 2 - len(shape))
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def spm_labels(name: str, shape: Sequence[int], cell: bool = False) -> tuple[str, ...]:
    """``spm_vec`` labels of every entry, in column-major order.

    ``shape`` is the thalia shape; for a cell array (``cell=True``) its last dimension counts the
    cell elements.
    """
    if cell:
        *matrix, k = shape
        inner = spm_labels(name, matrix)
        return tuple(f"{name}{{1,{e + 1}}}{label[len(name) :]}" for e in range(k) for label in inner)
    dims = matlab_shape(shape)
    order = [tuple(reversed(idx)) for idx in np.ndindex(*reversed(dims))]
    return tuple(f"{name}({','.join(str(i + 1) for i in idx)})" for idx in order)


def spm_spec(name: str, shape: Sequence[int], mean, var, doc: str = "", cell: bool = False) -> ParamSpec:
    """A column-major :class:`ParamSpec` carrying SPM labels (shape as MATLAB has it, see :func:`matlab_shape`)."""
    shape = tuple(int(s) for s in shape)
    if not cell:
        shape = matlab_shape(shape)
        mean = np.reshape(mean, shape) if np.size(mean) > 1 else mean
        var = np.reshape(var, shape) if np.size(var) > 1 else var
    return ParamSpec(name, shape, mean, var, doc, order="F", labels=spm_labels(name, shape, cell))


@dataclass(frozen=True)
class _Field:
    name: str
    cell: bool
    indices: list[tuple[int, ...]]  # 0-based, cell element last


def _parse(label: str, row: int) -> tuple[str, bool, tuple[int, ...]]:
    match = _LABEL.match(label.strip())
    if match is None:
        raise ValueError(
            f"Invalid parameter name {label!r} on row {row}: expected an spm_vec name such as 'T(1,2)' or "
            "'A{1,2}(1,1)'."
        )
    name, element, idx = match.groups()
    index = tuple(int(i) - 1 for i in idx.split(","))
    if min(index) < 0:
        raise ValueError(f"Invalid parameter name {label!r} on row {row}: MATLAB indices start at 1.")
    return name, element is not None, index + ((int(element) - 1,) if element else ())


def _group(labels: Sequence[str]) -> list[_Field]:
    fields: list[_Field] = []
    for row, label in enumerate(labels, start=2):
        name, cell, index = _parse(label, row)
        if fields and fields[-1].name == name:
            fields[-1].indices.append(index)
            continue
        if any(f.name == name for f in fields):
            raise ValueError(f"Parameter field {name!r} appears in two separate blocks (row {row}).")
        fields.append(_Field(name, cell, [index]))
    return fields


def _shape_of(field: _Field) -> tuple[int, ...]:
    ndim = {len(i) for i in field.indices}
    if len(ndim) != 1:
        raise ValueError(f"Parameter field {field.name!r} mixes index ranks {sorted(ndim)}.")
    shape = tuple(int(max(i[d] for i in field.indices)) + 1 for d in range(ndim.pop()))
    if field.cell and len(shape) == 2:  # a cell of scalars named X{1,k}(1) is not SPM's form
        raise ValueError(f"Parameter field {field.name!r}: cell elements must be matrices, e.g. 'A{{1,1}}(1,1)'.")
    return shape


def _first(labels: Sequence[str], k: int = 4) -> str:
    return ", ".join(labels[:k]) + (" …" if len(labels) > k else "")


def space_from_table(labels: Sequence[str], mean: np.ndarray, var: np.ndarray) -> ParamSpace:
    """A column-major :class:`ParamSpace` whose entries are exactly ``labels`` (in ``spm_vec`` order)."""
    specs, start = [], 0
    for field in _group(labels):
        shape = _shape_of(field)
        spec_labels = spm_labels(field.name, shape, field.cell)
        given = labels[start : start + len(field.indices)]
        if tuple(s.strip() for s in given) != spec_labels:
            raise ValueError(
                f"Parameter field {field.name!r}: the table must list every entry of its {shape} array in "
                f"spm_vec (column-major) order, i.e. {_first(spec_labels)}; got {_first(given)}."
            )
        block = slice(start, start + len(spec_labels))
        m, v = (np.reshape(values[block], shape, order="F") for values in (mean, var))
        specs.append(ParamSpec(field.name, shape, m, v, order="F", labels=spec_labels))
        start += len(spec_labels)
    return ParamSpace(tuple(specs))


def _read_csv(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise ValueError(f"Invalid value for 'csv_path': cannot read {str(path)!r} ({error.strerror}).") from None
    if not rows or "name" not in [h.strip() for h in rows[0]]:
        raise ValueError(
            f"Invalid value for 'csv_path': {str(path)!r} is not an SPM parameter table (expected a header "
            "with a 'name' column, e.g. 'name,pE,pC_diag')."
        )
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    if any(len(r) != len(header) for r in body):
        raise ValueError(f"Invalid value for 'csv_path': {str(path)!r} has rows of unequal length.")
    columns = {h: [r[i] for r in body] for i, h in enumerate(header)}
    return columns.pop("name"), columns


def _column(columns: dict[str, list[str]], wanted: str, path: Path, required: bool = True) -> np.ndarray | None:
    for candidate in COLUMN_ALIASES.get(wanted, (wanted,)):
        if candidate in columns:
            values = np.empty(len(columns[candidate]))
            for row, text in enumerate(columns[candidate]):
                try:
                    values[row] = float(text)
                except ValueError:
                    raise ValueError(
                        f"Column {candidate!r} of {str(path)!r}, row {row + 2}: expected a number, got {text!r}."
                    ) from None
            if not np.isfinite(values).all():
                raise ValueError(f"Column {candidate!r} of {str(path)!r} holds a non-finite value.")
            return values
    if required:
        raise ValueError(
            f"Invalid value for 'column': {wanted!r} is not a column of {str(path)!r}; "
            f"available: {', '.join(repr(c) for c in columns)}."
        )
    return None


def read_spm_parameters(csv_path: str | Path, column: str = "pE") -> ParameterSet:
    """Read an SPM-style parameter table into a :class:`~thalia.params.ParameterSet`.

    Parameters
    ----------
    csv_path : str or Path
        A CSV with a ``name`` column of ``spm_vec`` names (``T(1,2)``, ``A{1,2}(1,1)``, …) in
        ``spm_vec`` order and one numeric column per quantity (SPM's ``*_priors.csv`` format).
    column : str
        The column holding the values: ``"pE"`` (prior mean, the default), a posterior ``"Ep"``, or any
        other column. ``pE``/``prior_mean``, ``pC_diag``/``prior_var`` and ``Ep``/``posterior_mean``
        are aliases of each other.

    Returns
    -------
    ParameterSet
        Values from ``column``; its space carries the table's prior mean and variance when it has them
        (otherwise the values with variance 0). The arrays have SPM's shapes; cell arrays such as
        ``A{1..4}`` become one array with the cell index last. Pass it to
        :func:`thalia.mass.spm.csd` or to a :class:`~thalia.mass.CMC` / :class:`~thalia.mass.CMMNMDA`
        model of the same size.
    """
    path = Path(csv_path)
    labels, columns = _read_csv(path)
    values = _column(columns, column, path)
    mean = _column(columns, "pE", path, required=False)
    var = _column(columns, "pC", path, required=False)
    mean = values if mean is None else mean
    var = np.zeros_like(values) if var is None else var
    if (var < 0).any():
        raise ValueError(f"Prior variances in {str(path)!r} must be >= 0.")
    space = space_from_table(labels, mean, var)
    return ParameterSet.from_vector(space, values)


def write_spm_parameters(csv_path: str | Path, p: ParameterSet, columns: dict[str, np.ndarray] | None = None) -> None:
    """Write ``p`` as an SPM-style table: ``name, pE, pC_diag, value`` (plus any extra ``columns``)."""
    space = p.space
    table = {
        "pE": space.prior_mean_vector().numpy(),
        "pC_diag": space.prior_var_vector().numpy(),
        "value": p.to_vector().detach().cpu().numpy(),
        **(columns or {}),
    }
    labels = space.vector_labels()
    with Path(csv_path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", *table])
        for i, label in enumerate(labels):
            writer.writerow([label, *(repr(float(table[c][i])) for c in table)])

"""Channel names as users type them: case and the trailing dots of EDF labels (``"O1.."``) ignored."""

from __future__ import annotations

from collections.abc import Sequence


def _key(name: str) -> str:
    return str(name).strip().rstrip(".").lower()


def resolve_channels(wanted: Sequence[str] | str, names: Sequence[str]) -> list[str]:
    """The names in ``names`` of the channels ``wanted`` (exact, else ignoring case and trailing dots).

    Raises a ValueError naming the unknown channels and listing the known ones.
    """
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    names = list(names)
    by_key = {_key(n): n for n in names}
    found = [w if w in names else by_key.get(_key(w)) for w in wanted]
    unknown = [w for w, f in zip(wanted, found, strict=True) if f is None]
    if unknown or not wanted:
        shown = ", ".join(n.rstrip(".") for n in names[:80]) + (", ..." if len(names) > 80 else "")
        given = ", ".join(repr(u) for u in unknown) or "(none given)"
        raise ValueError(f"Unknown channel(s) {given}: expected names from {shown} (case and trailing dots ignored).")
    return list(dict.fromkeys(found))


def average_label(names: Sequence[str]) -> str:
    """Name of the average of channels: ``"mean(O1,Oz,O2)"``."""
    return f"mean({','.join(n.rstrip('.') for n in names)})"

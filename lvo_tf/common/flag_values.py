"""Values of two-number settings: the binaries' list flags (`--crop=h,w`,
`--x=lo,hi`) and the check of a (lo, hi) range.

Free of TensorFlow, so light binaries (synthesize) can use it too."""

from __future__ import annotations

from collections.abc import Callable


def parse_pair(
    name: str,
    values: list[str] | None,
    kind: Callable[[str], float] = float,
    form: str = "'lo,hi' (two numbers)",
) -> tuple | None:
    """The value of a two-element list flag `name`; None when not given.
    ValueError names the flag and shows the expected `form`."""
    if not values:
        return None
    try:
        a, b = (kind(v) for v in values)
    except ValueError:
        raise ValueError(f"{name} must be {form}; got {','.join(values)}") from None
    return a, b


def check_range(name: str, pair: tuple[float, float], upper: float | None = None) -> None:
    """ValueError naming `name` unless its (lo, hi) has 0 < lo <= hi (<= upper)."""
    lo, hi = pair
    if not 0 < lo <= hi or (upper is not None and hi > upper):
        bound = f" <= {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be 0 < lo <= hi{bound}; got {lo},{hi}")


def parse_crop(values: list[str] | None) -> tuple[int, int] | None:
    """The value of a `--crop=h,w` list flag; None when not given."""
    return parse_pair("--crop", values, int, "'h,w' (two integers)")

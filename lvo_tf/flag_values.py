"""Values of the binaries' two-number list flags (`--crop=h,w`, `--x=lo,hi`).

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


def parse_crop(values: list[str] | None) -> tuple[int, int] | None:
    """The value of a `--crop=h,w` list flag; None when not given."""
    return parse_pair("--crop", values, int, "'h,w' (two integers)")

"""How every binary ends on bad input: one line naming the input, no traceback.

    from lvo_tf.common import cli
    ...
    if __name__ == "__main__":
        cli.run(main)

`cli.run(main)` is `absl.app.run(main)` with the project's error contract
(README, "Bad input"): a usage error (`app.UsageError`), a refused input
(`ValueError`, which the project's own input errors derive from) or a path the
system refuses (`OSError`: missing, unwritable, a file where a folder is
needed, a full disk) ends with one line on stderr,

    segment: error: --output_dir '/x/y': [Errno 20] Not a directory: '/x/y'

and exit status 2, after nothing is left half-written (outputs are written
atomically). The help is not reprinted: `--helpshort` gives it. Set
`LVO_DEBUG=1` to see the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from absl import app, flags

EXIT_INPUT = 2
_HINT = " (--helpshort lists the flags)"
_PROJECT_PACKAGES = ("lvo_tf", "export")


def describe(error: BaseException) -> str:
    """One line for `error`: its message, or for an OSError what the system
    said and of which path."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        paths = repr(error.filename)
        if error.filename2 is not None:
            paths += f" -> {error.filename2!r}"
        text = f"{paths}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def program() -> str:
    """The binary's name as a user typed it (`segment` for `python -m lvo_tf.segment`)."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "lvo_tf"
    return name.removesuffix(".py")


def fail(message: str) -> None:
    """Writes `<program>: error: <message>` and exits with EXIT_INPUT."""
    sys.stderr.write(f"{program()}: error: {message}\n")
    sys.stderr.flush()
    sys.exit(EXIT_INPUT)


def guard(main: Callable[[list[str]], object]) -> Callable[[list[str]], object]:
    """`main` with its input errors turned into `fail`'s one line."""

    def guarded(argv):
        if os.environ.get("LVO_DEBUG"):
            return main(argv)
        try:
            return main(argv)
        except app.UsageError as e:
            message = describe(e)
            fail(message + (_HINT if "--" in message else ""))
        except (ValueError, OSError) as e:
            fail(describe(e))

    guarded.__doc__ = main.__doc__
    return guarded


def adopt_project_flags() -> None:
    """Makes the flags the project's library modules define (a trainer's
    --steps, --seed, ...) key flags of the binary, so `--helpshort` lists
    every flag a user of it may set, not only those its own file defines."""
    main = sys.argv[0] if sys.argv else None
    if not main:
        return
    for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
        if module.split(".")[0] in _PROJECT_PACKAGES and module != main:
            for flag in module_flags:
                flags.FLAGS.register_key_flag_for_module(main, flag)


def run(main: Callable[[list[str]], object], **kwargs) -> None:
    """`absl.app.run(main)` under `guard`, with the project's flags listed by
    `--helpshort`."""
    adopt_project_flags()
    app.run(guard(main), **kwargs)

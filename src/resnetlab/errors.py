"""The one exception type that means "the user gave us something we cannot use", and the two
helpers every one-line error message shares: :func:`did_you_mean` and :func:`first_line`.

The command line prints its message as a single line and exits with code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


class UserError(ValueError):
    """A bad input: the message names the key, file or value and what to do about it.

    A ValueError, so library code that raises it is caught like any other bad argument by
    callers that do not know the command line.
    """


def did_you_mean(word: str, options: Iterable[str], *, cutoff: float = 0.6, shown: Callable[[str], str] = str,
                 prefix: str = "; ", suffix: str = "") -> str:
    """``"; did you mean 'optim.lr'?"`` for the option closest to ``word``, or ``""`` when none is close.

    ``shown`` turns the matched option into what the message names (a full key for a short one);
    ``prefix``/``suffix`` fit the phrase into its sentence (``" ("`` and ``")"`` for a parenthesis).
    """
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=cutoff)
    return f"{prefix}did you mean '{shown(match[0])}'?{suffix}" if match else ""


def first_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The first line of an exception's message, for one-line errors: its class name if it has none;
    ``with_type`` gives ``"Type: message"``, for errors that are bugs rather than bad input."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if with_type and line:
        return f"{type(exc).__name__}: {line}"
    return line or type(exc).__name__


def shorten(value: object, limit: int = 100) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for quoting user values in one-line errors.

    Built with ``reprlib`` so a huge nested value is never fully rendered before it is cut.
    """
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict, short.maxset = 3, 8, 8, 8, 8
    short.maxstring = short.maxother = short.maxlong = limit
    shown = short.repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def clip_words(message: str, limit: int = 160) -> str:
    """``message`` with every word longer than ``limit`` cut: the last guard, where an error is printed,
    against a huge value quoted whole (a 5,000-character model name, an expanded list)."""
    return " ".join(word if len(word) <= limit else word[: limit - 3] + "..." for word in message.split(" "))

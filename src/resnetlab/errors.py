"""The one exception type that means "the user gave us something we cannot use".

The command line prints its message as a single line and exits with code 2; anything
else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """A bad input: the message names the key, file or value and what to do about it.

    A ValueError, so library code that raises it is caught like any other bad argument by
    callers that do not know the command line.
    """


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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name if it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def clip_words(message: str, limit: int = 160) -> str:
    """``message`` with every word longer than ``limit`` cut: the last guard, where an error is printed,
    against a huge value quoted whole (a 5,000-character model name, an expanded list)."""
    return " ".join(word if len(word) <= limit else word[: limit - 3] + "..." for word in message.split(" "))

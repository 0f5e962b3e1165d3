"""The one exception type that means "the user gave us something we cannot use".

The command line prints its message as a single line and exits with code 2; anything
else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """A bad input: the message names the key, file or value and what to do about it.

    A ValueError, so library code that raises it is caught like any other bad argument by
    callers that do not know the command line.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name if it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

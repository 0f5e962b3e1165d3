"""`resnetlab train` with nothing else on a terminal: pick a preset from a numbered list."""

from __future__ import annotations

from collections.abc import Callable

from resnetlab.config import describe_preset, list_presets
from resnetlab.errors import UserError

DEFAULT = "quick"


def pick_preset(ask: Callable[[str], str] = input, say: Callable[[str], None] = print) -> str:
    """Show the presets and read a number or a name; Enter takes `DEFAULT`."""
    names = list_presets()
    say("Presets (skip this question with resnetlab train preset=NAME):")
    width = max(map(len, names))
    for number, name in enumerate(names, 1):
        say(f"  {number:2}  {name:{width}}  {describe_preset(name)}")
    while True:
        try:
            answer = ask(f"Preset [{DEFAULT}]: ").strip()
        except EOFError:
            raise UserError("no preset chosen; run resnetlab train preset=NAME") from None
        if not answer:
            return DEFAULT
        if answer.isdigit() and 1 <= int(answer) <= len(names):
            return names[int(answer) - 1]
        if answer in names:
            return answer
        say(f"'{answer}' is not one of them; type a number from 1 to {len(names)} or a name")

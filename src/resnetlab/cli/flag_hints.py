"""`resnetlab train --epochs 1` is a natural guess; the error answers with the key it meant: train.epochs=1.

Settings are config keys given as ``section.key=value``, not options. An unknown ``--flag`` is
matched against every key: by full name (``--train.epochs``, ``--optim-lr``), by the key's own
name (``--epochs``, ``--batch-size``), then by a close spelling (``--epoch``).
"""

from __future__ import annotations

import difflib

from resnetlab.cli.keys import is_switch
from resnetlab.config import all_keys

MAX_SHOWN = 4  # `--name`: model, optim, schedule and output each have one


def flag_hint(flag: str, value: str | None, *, sections: tuple[str, ...] | None = None) -> str | None:
    """'did you mean train.epochs=1?' for ``--epochs`` followed by ``1``, or None when no key is close."""
    name, equals, inline = flag.lstrip("-").partition("=")
    keys = [k for k in all_keys() if sections is None or k.split(".", 1)[0] in sections]
    matches = closest_keys(name.replace("-", "_"), keys)
    if not matches:
        return None
    shown = " or ".join(f"{key}={inline if equals else value or _placeholder(key)}" for key in matches[:MAX_SHOWN])
    return f"did you mean {shown}"


def closest_keys(name: str, keys: list[str]) -> list[str]:
    """The keys `name` most likely meant, best first."""
    for full in (name, name.replace("_", ".", 1)):  # train.epochs, train_epochs
        if full in keys:
            return [full]
    leaves: dict[str, list[str]] = {}
    for key in keys:
        leaves.setdefault(key.split(".", 1)[1], []).append(key)
    if name in leaves:
        return leaves[name]
    close = difflib.get_close_matches(name, list(leaves), n=MAX_SHOWN, cutoff=0.75)
    close_full = difflib.get_close_matches(name, keys, n=1, cutoff=0.85)
    return close_full or [key for leaf in close for key in leaves[leaf]]


def _placeholder(key: str) -> str:
    return "true" if is_switch(key) else "VALUE"

"""The sub-commands: parse what argparse gave, call ``resnetlab.api``, print the outcome."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from resnetlab.config import build_config, describe_preset, list_presets, read_yaml, to_dict
from resnetlab.errors import UserError


def is_interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def train(args: argparse.Namespace) -> int:
    from resnetlab import api
    from resnetlab.training.signals import Interrupted

    overrides = list(args.overrides)
    if args.resume:
        run_dir = Path(args.resume)
        run_dir = run_dir.parent if run_dir.is_file() else run_dir
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"--resume {args.resume}: no config.yaml there; give the folder of a run")
        cfg = build_config([*overrides, f"train.resume={run_dir}"], base=read_yaml(run_dir / "config.yaml"))
    else:
        if not overrides and is_interactive():  # a bare `resnetlab train` at a terminal asks which preset
            from resnetlab.cli.preset_picker import pick_preset

            overrides = [f"preset={pick_preset()}"]
        cfg = build_config(overrides)
    try:
        result = api.train(cfg)
    except Interrupted as stop:
        # The loop's log line says where it stopped and that last.pt holds the state (shown unless
        # output.progress=false); this line is what to type next.
        print(f"stopped by {stop.signal_name}; resume with: resnetlab train --resume {stop.run_dir}", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        print(f"run folder: {result.run_dir}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from resnetlab import api

    result = api.evaluate(args.run, overrides=args.overrides, split=args.split, tta=args.tta, out_dir=args.out,
                          compile=args.compile)
    print(result.format())
    return 0


def predict(args: argparse.Namespace) -> int:
    from resnetlab import api

    result = api.predict(args.run, args.inputs, out=args.out, tta=args.tta, batch_size=args.batch_size,
                         compile=args.compile)
    print(f"wrote {result.count} predictions to {result.path}")
    if result.repeated:
        # Ids stay file stems (what Kaggle-style submissions expect), so say when two files share one.
        stem, paths = next(iter(result.repeated.items()))
        print(f"note: {len(result.repeated)} ids repeat (ids are file names without extension, e.g. {stem} from "
              f"{paths[0]} and {paths[1]})", file=sys.stderr)
    if result.skipped:
        print(f"skipped {len(result.skipped)} unreadable files:", file=sys.stderr)
        for bad in result.skipped:
            print(f"  {bad.path}: {bad.reason}", file=sys.stderr)
    return 0


def summary(args: argparse.Namespace) -> int:
    from resnetlab import api
    from resnetlab.models import list_models

    if args.list or not args.model:
        print("\n".join(list_models()))
        return 0
    info = api.summary(args.model, image_size=args.image_size, in_channels=args.in_channels,
                       num_classes=args.num_classes, stem=args.stem, width=args.width, multiscale=args.multiscale,
                       attention=args.attention, memory=args.memory)
    print(info.format())
    return 0


def report(args: argparse.Namespace) -> int:
    from resnetlab.evaluation.compare import write_comparison
    from resnetlab.evaluation.report import write_report

    runs = [Path(r) for r in args.runs]
    for run in runs:
        if not run.exists():
            raise UserError(f"run folder {run} not found; give run folders, e.g. runs/NAME")
        if not (run / "metrics.json").is_file():
            raise UserError(f"{run} is not a finished run folder (no metrics.json); give folders under runs/")
    for run in runs:  # every folder checked first: nothing is written for a list with a bad one
        print(f"wrote {write_report(run)}")
    if len(runs) > 1:
        out = Path(args.out) if args.out else runs[0].parent
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--out {out}: cannot create the folder ({exc.strerror}); give a writable folder") from None
        print(f"wrote {write_comparison(runs, out)}")
    return 0


def show_config(args: argparse.Namespace) -> int:
    if args.presets:
        width = max(map(len, list_presets()))
        print("\n".join(f"{name:{width}}  {describe_preset(name)}" for name in list_presets()))
        return 0
    if args.keys:
        _print_keys()
        return 0
    cfg = build_config(args.overrides)
    from resnetlab.api.assemble import validate_config

    validate_config(cfg)  # the cross-field checks train would make, so a printed config is a usable one
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0


def _print_keys() -> None:
    from resnetlab.cli.keys import key_infos

    infos = key_infos()
    rows = [(info.key, _shown(info.default), info.accepted, info.help) for info in infos]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])


def _shown(value: object) -> str:
    """A default as it would be typed in an override."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).replace(" ", "")

"""``resnetlab study`` and ``resnetlab search``: compare configurations, search hyperparameters.

``cli/main.py`` calls :func:`register` with its sub-parsers and the parent parser that
gives every command ``--debug``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from resnetlab.errors import UserError

OVERRIDES_HELP = "config overrides applied to the base of every run: preset=NAME, config=FILE.yaml, section.key=value"


def register(subparsers: Any) -> None:
    """Add the ``study`` and ``search`` sub-commands (main.py's ``add_parser`` gives each the common options)."""
    p = subparsers.add_parser("study", help="train the variants of a study and compare them (mean ± std)",
             description="Run a study file (or a built-in study) and write all_results.json, results.csv, "
                         "study.md and plots in runs/<study>/. Finished runs are skipped, interrupted ones resumed.",
             epilog="examples:\n"
                    "  resnetlab study --list\n"
                    "  resnetlab study optimizer\n"
                    "  resnetlab study lr data.source=fashion-mnist train.epochs=5\n"
                    "  resnetlab study my_study.yaml --jobs 2")
    p.add_argument("study", nargs="?", metavar="STUDY.yaml|NAME", help="a study file or a built-in study name")
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs at once, as separate processes sharing the CPU cores (default 1, in this process)")
    p.add_argument("--out", metavar="DIR", help="the study folder (default: <output.dir>/<study name>)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing; rebuild the results and study.md from the run folders")
    p.add_argument("--list", action="store_true", help="list the built-in studies and searches")
    p.set_defaults(func=study)

    p = subparsers.add_parser("search", help="hyperparameter search with Optuna (shared by many workers)",
             description="Search a space of config keys with Optuna (TPE, median pruning). Start the same command "
                         "in several processes or machines to share the work; --trials is the total.",
             epilog="examples:\n"
                    "  resnetlab search hparams --trials 30\n"
                    "  resnetlab search my_search.yaml --trials 40 --retrain\n"
                    "  resnetlab search hparams --trials 60 --storage postgresql://user@host/db   # on every machine")
    p.add_argument("search", metavar="SEARCH.yaml|NAME", help="a search file (with space:) or a built-in search")
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--trials", type=int, metavar="N",
                   help="finished trials (complete + pruned) wanted in total, over every worker")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage URL shared by the workers (default sqlite:///runs/<search>/search.db)")
    p.add_argument("--study-name", metavar="NAME", help="Optuna study name (default: the search's name)")
    p.add_argument("--retrain", action="store_true",
                   help="at the end, train the best configuration as runs/<search>/best/")
    p.add_argument("--out", metavar="DIR", help="the search folder (default: <output.dir>/<study name>)")
    p.set_defaults(func=search)



def study(args: argparse.Namespace) -> int:
    from resnetlab.studies.runner import run_study
    from resnetlab.studies.spec import describe_builtins, load_study

    if args.list or not args.study:
        builtins = describe_builtins()
        width = max(len(name) for name, _, _ in builtins)
        for name, kind, description in builtins:
            print(f"{name:{width}} {kind:7} {description}")
        return 0
    spec = load_study(args.study)
    outcome = run_study(spec, overrides=args.overrides, jobs=args.jobs, out=args.out, echo=_echo,
                        report_only=args.report_only)
    counts: dict[str, int] = {}
    for status in outcome.status.values():
        counts[status] = counts.get(status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"study {spec.name}: {len(outcome.runs)} runs ({summary}); report {outcome.report}")
    if outcome.interrupted:
        print("interrupted; run the same command again to continue (finished runs are kept)", file=sys.stderr)
        return 130
    return 1 if counts.get("failed") else 0


def search(args: argparse.Namespace) -> int:
    from resnetlab.studies.search import run_search
    from resnetlab.studies.spec import load_search

    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials takes a whole number >= 1, got {args.trials}")
    spec = load_search(args.search)
    outcome = run_search(spec, overrides=args.overrides, trials=args.trials, storage=args.storage,
                         study_name=args.study_name, retrain=args.retrain, out=args.out, echo=_echo)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(outcome.counts.items()))
    print(f"search {outcome.study_name}: {counts}; report {outcome.report}")
    if outcome.best is not None:
        print(f"best: trial {outcome.best['number']}, {spec.metric} {outcome.best['value']:.4f}; "
              f"resnetlab train config={outcome.best_config}")
    for note in outcome.notes:
        print(note, file=sys.stderr)
    if outcome.retrained is not None:
        print(f"retrained: {outcome.retrained}")
    if outcome.interrupted:
        print("interrupted; run the same command again to continue the search", file=sys.stderr)
        return 130
    if outcome.failed:
        # Like a study with a failed run: a script must not go on as if the search had worked.
        why = "stopped after failed trials" if outcome.stopped else "no trial completed"
        print(f"search {outcome.study_name}: {why}; see the error column of {outcome.report}", file=sys.stderr)
        return 1
    return 0


def _echo(line: str) -> None:
    print(line, flush=True)

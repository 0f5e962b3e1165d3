"""``resnetlab baseline ...``: classical baselines whose run folders sit beside network runs.

``register(subparsers, common_parent)`` adds the command to the main parser; each baseline
is a sub-command (``hog-svm``) taking data.* overrides and its own --options.
"""

from __future__ import annotations

import argparse

DATA_HELP = ("data.* overrides, e.g. data.source=fashion-mnist (built-ins keep their native image size "
             "unless data.image_size is given)")


def register(subparsers: argparse._SubParsersAction, common_parent: argparse.ArgumentParser) -> None:
    """Add ``baseline`` with its sub-commands; `common_parent` carries the shared --debug."""
    from resnetlab.baselines.params import DEFAULT_C, KERNELS, HogParams, SvmParams

    # main.py's add_parser may already add the common parent; the leaves add it themselves.
    p = subparsers.add_parser("baseline", help="classical baselines (HOG+SVM) as comparable run folders",
                              description="Fit a classical baseline on the same data and splits as a network; its "
                                          "run folder has the same metrics, plots and report, so `resnetlab report` "
                                          "and studies compare it with network runs.",
                              epilog="examples:\n"
                                     "  resnetlab baseline hog-svm data.source=fashion-mnist\n"
                                     "  resnetlab report runs/hog-svm_* runs/NAME")
    kinds = p.add_subparsers(dest="baseline", metavar="BASELINE", required=True, help="the baseline to fit")

    hog, svm = HogParams(), SvmParams()
    q = kinds.add_parser("hog-svm", parents=[common_parent],
                         help="HOG features + SVM (scikit-image, scikit-learn)",
                         description="Fit an SVM on HOG features of the train split; write metrics, plots "
                                     "and report.md for val and test like a training run.",
                         epilog="examples:\n"
                                "  resnetlab baseline hog-svm\n"
                                "  resnetlab baseline hog-svm data.source=fashion-mnist --kernel linear\n"
                                "  resnetlab baseline hog-svm data.source=path/to/images data.image_size=64 --C 5")
    q.add_argument("overrides", nargs="*", help=DATA_HELP)
    q.add_argument("--kernel", choices=KERNELS, default=svm.kernel,
                   help=f"linear SVM, or an RBF SVC on PCA-reduced features (default {svm.kernel})")
    q.add_argument("--C", type=float, default=None,
                   help=f"SVM regularization, > 0 (default {DEFAULT_C['rbf']:g} for rbf, "
                        f"{DEFAULT_C['linear']:g} for linear)")
    q.add_argument("--gamma", type=float, default=None, help="RBF width (default sklearn's 'scale')")
    q.add_argument("--pca", type=int, default=svm.pca_components, dest="pca_components",
                   help=f"principal components kept before the RBF SVC (default {svm.pca_components})")
    q.add_argument("--orientations", type=int, default=hog.orientations,
                   help=f"HOG orientation bins (default {hog.orientations})")
    q.add_argument("--pixels-per-cell", type=int, default=hog.pixels_per_cell,
                   help=f"HOG cell side in pixels (default {hog.pixels_per_cell})")
    q.add_argument("--cells-per-block", type=int, default=hog.cells_per_block,
                   help=f"HOG block side in cells (default {hog.cells_per_block})")
    q.add_argument("--smoothing", type=float, default=hog.smoothing,
                   help=f"Gaussian blur sigma in pixels before HOG, 0 for none (default {hog.smoothing:g})")
    q.add_argument("--offset-grid", action=argparse.BooleanOptionalAction, default=hog.offset_grid,
                   help="add HOG on a grid offset by half a cell (default on)")
    q.add_argument("--workers", type=int, default=None, help="feature extraction processes (default: up to 2)")
    q.add_argument("--out", metavar="DIR", default="runs", help="folder that holds run folders (default runs)")
    q.add_argument("--name", help="run folder name (default hog-svm_<kernel>_C<C>_<timestamp>)")
    q.set_defaults(func=hog_svm)


def hog_svm(args: argparse.Namespace) -> int:
    from resnetlab.api.assemble import baseline_data_config, data_kwargs
    from resnetlab.baselines.hog_svm import train_hog_svm

    data = data_kwargs(baseline_data_config(args.overrides))
    result = train_hog_svm(data, kernel=args.kernel, C=args.C, gamma=args.gamma,
                           pca_components=args.pca_components, orientations=args.orientations,
                           pixels_per_cell=args.pixels_per_cell, cells_per_block=args.cells_per_block,
                           smoothing=args.smoothing, offset_grid=args.offset_grid, out_dir=args.out,
                           name=args.name, workers=args.workers)
    print(f"run folder: {result.run_dir}")
    return 0

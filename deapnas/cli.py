"""The ``deapnas`` command: ``search``, ``resume``, ``show`` and ``train``."""
from __future__ import annotations

import argparse
import signal
import sys
from typing import Optional, Sequence

from . import runner
from .data import DATASETS, DEFAULT_DATA_DIR, DatasetError
from .runner import ALGORITHMS, TABLE_DATASETS, SearchConfig
from .spaces import SPACES

DEFAULTS = SearchConfig()


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones (None, False) whose help says what happens."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deapnas", description="Evolutionary neural architecture search with DEAP.",
        formatter_class=_Formatter, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    search = commands.add_parser(
        "search", help="run a new search", formatter_class=_Formatter, allow_abbrev=False,
        description="Run a new architecture search. The defaults search the macro space with "
                    "regularized evolution on the bundled digits data in about three minutes "
                    "on two CPU cores; --preset paper gives the paper's settings.")
    _add_search_options(search)

    resume = commands.add_parser("resume", help="continue an interrupted search")
    resume.add_argument("directory", help="the run directory (the --out of the search)")

    show = commands.add_parser("show", help="summarise a run and plot it to PNG files")
    show.add_argument("directory", help="the run directory")

    train = commands.add_parser(
        "train", help="retrain the best architecture longer and report its test accuracy",
        formatter_class=_Formatter, allow_abbrev=False)
    train.add_argument("directory", help="the run directory")
    train.add_argument("--epochs", type=int, default=20, help="training epochs")
    train.add_argument("--device", default=None, help="device (unset: the run's)")
    train.add_argument("--channels", type=int, default=None,
                       help="width C of the retrained network (unset: the search's)")
    return parser


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    what = parser.add_argument_group("what to search")
    what.add_argument("--algorithm", choices=ALGORITHMS, default=d.algorithm,
                      help="re: regularized (aging) evolution; random: the same loop with "
                           "sample size 1, the paper's random-search baseline")
    what.add_argument("--space", choices=tuple(SPACES), default=d.space,
                      help="macro: DeepNEAT-style whole networks; nb201: NAS-Bench-201 cells")
    what.add_argument("--preset", choices=("quick", "paper"), default="quick",
                      help="quick: the defaults shown here; paper: P=100, S=25, 400 cycles, "
                           "10 epochs, C=64 on fashion-mnist (options given explicitly win)")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS + TABLE_DATASETS, default=d.dataset,
                      help="digits is bundled; idx reads an IDX image/label pair from "
                           "--data-dir; nb201 is the benchmark table given by --table")
    data.add_argument("--data-dir", default=d.data_dir,
                      help=f"where datasets are read from (unset: {DEFAULT_DATA_DIR})")
    data.add_argument("--download", action="store_true",
                      help="download a torchvision dataset that is missing (needs network)")
    data.add_argument("--table", default=d.table,
                      help="a benchmark CSV: fitness is looked up instead of trained")
    data.add_argument("--metric", default=d.metric, help="the --table column used as fitness")
    data.add_argument("--report", default=d.report,
                      help="a --table column reported for the pick, never used to select")
    budget = parser.add_argument_group("budget and evolution")
    budget.add_argument("--evaluations", type=int, default=d.evaluations,
                        help="evaluations in all, the first population included")
    budget.add_argument("--population", type=int, default=d.population, help="population P")
    budget.add_argument("--sample-size", type=int, default=d.sample_size, help="sample size S")
    budget.add_argument("--min-evaluations", type=int, default=d.min_evaluations,
                        help="the pick is the best mean among architectures evaluated at "
                             "least this often")
    budget.add_argument("--time-limit", type=float, default=d.time_limit,
                        help="stop breeding after this many seconds (unset: no limit)")
    training = parser.add_argument_group("training each candidate")
    training.add_argument("--epochs", type=int, default=d.epochs, help="epochs per candidate")
    training.add_argument("--batch-size", type=int, default=d.batch_size, help="batch size")
    training.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    training.add_argument("--channels", type=int, default=d.channels,
                          help="width C (macro: conv filters; nb201: stem channels)")
    training.add_argument("--cells", type=int, default=d.cells,
                          help="nb201: cells per stage (the benchmark uses 5)")
    training.add_argument("--max-params", type=int, default=d.max_params,
                          help="candidates with more parameters fail without training; 0 for "
                               "no cap")
    training.add_argument("--device", default=d.device,
                          help="auto, cpu, cuda, cuda:1, ...; with --workers a list such as "
                               "cuda:0,cuda:1 spreads the workers over those devices")
    training.add_argument("--seed", type=int, default=d.seed, help="random seed")
    parallel = parser.add_argument_group("parallel and distributed evaluation")
    parallel.add_argument("--workers", type=int, default=d.workers,
                          help="evaluations at once: worker processes pinned to devices (or "
                               "Ray actors with --ray); 1 evaluates in this process")
    parallel.add_argument("--eval-timeout", type=float, default=d.eval_timeout,
                          help="seconds one evaluation may take before its worker is killed "
                               "and the candidate gets the worst fitness")
    parallel.add_argument("--retries", type=int, default=d.retries,
                          help="further attempts for a candidate whose worker died or timed out")
    parallel.add_argument("--ray", action="store_true",
                          help="evaluate on Ray (a local instance unless --ray-address)")
    parallel.add_argument("--ray-address", default=d.ray_address,
                          help="address of a running Ray cluster, e.g. ray://head:10001")
    output = parser.add_argument_group("output")
    output.add_argument("--out", default=d.out,
                        help="run directory (unset: runs/ALGORITHM-SPACE-DATASET-seedSEED)")
    output.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                        help="evaluations between checkpoints")
    output.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, argv: Sequence[str]) -> SearchConfig:
    """The search config: the preset's values, overridden by every option given explicitly."""
    fields = {f: getattr(args, f) for f in SearchConfig.__dataclass_fields__}
    if args.preset == "quick":
        return SearchConfig(**fields)
    given = {f: v for f, v in fields.items()
             if any(a.split("=")[0] == "--" + f.replace("_", "-") for a in argv)}
    return SearchConfig.paper(**given)


def _interrupt(signum, frame) -> None:
    """SIGTERM ends a search like Ctrl-C: the checkpoint is written, resume continues it."""
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _dispatch(args, argv)
    except (ValueError, DatasetError, FileNotFoundError) as error:
        print(f"deapnas {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the last checkpoint is saved; continue with `deapnas resume DIR`",
              file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from . import report  # matplotlib is imported only by the commands that draw

    if args.command == "search":
        config = config_from_args(args, argv)
        runner.start(config, progress=not args.quiet)
        print(report.summary(config.out))
    elif args.command == "resume":
        runner.resume(args.directory)
        print(report.summary(args.directory))
    elif args.command == "show":
        print(report.summary(args.directory))
        print(f"wrote {report.plot_history(args.directory)}")
        if report.load_run(args.directory)[2] is not None:
            print(f"wrote {report.plot_best(args.directory)}")
    elif args.command == "train":
        result = report.retrain(args.directory, args.epochs, args.device, args.channels)
        print(f"test accuracy {result['test_accuracy']:.4f} on {result['test_images']} images "
              f"after {result['epochs']} epochs ({result['params']:,} parameters); "
              f"weights in {args.directory}/model.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``deapnas`` command: ``search``, ``resume``, ``show``, ``train`` and ``export``.

``search`` is generic over the method registry: its options are generated from the shared
:class:`~deapnas.options.RunConfig` and from every method's options dataclass, grouped by
method, so a method registered by a user gets its flags, help and range checks for free.

This module imports only the standard library and deapnas's light modules, so that ``deapnas
--help`` answers at once; a command imports what it uses (torch, the methods, matplotlib) when
it runs (:func:`_load`).
"""
from __future__ import annotations

import argparse
import signal
import sys
import unicodedata
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from . import options as opts
from .limits import MAX_CHANNELS, MAX_EPOCHS
from .options import RunConfig, TrainingOptions
from .safefiles import SearchFailed

if TYPE_CHECKING:
    from .methods import Method

GROUPS = {  # RunConfig fields by help group
    "what to search": ("algorithm", "space", "objectives", "fitness"),
    "data": ("dataset", "data_dir", "download", "table", "metric", "report"),
    "budget": ("evaluations", "time_limit", "seed"),
    "parallel and distributed evaluation": ("device", "workers", "threads", "eval_timeout",
                                            "retries", "ray", "ray_address"),
    "output": ("out", "checkpoint_every", "checkpoint_gap", "tensorboard"),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are short: the command's usage in one line, the error with the
    option or choice most likely meant, and where the full list is (not every option's usage)."""

    def error(self, message: str) -> None:
        usage = " ".join([self.prog, *(a.metavar or a.dest.upper() for a in self._actions
                                        if not a.option_strings), "[OPTIONS]"])
        self.exit(2, f"usage: {usage} (all of them: `{self.prog} --help`)\n"
                     f"{self.prog}: error: {message}\n")

    def unrecognized(self, arguments: Sequence[str]) -> None:
        """Refuse ``arguments``, suggesting the flag meant for each misspelt one."""
        flags = [f for action in self._actions for f in action.option_strings]
        self.error("unrecognized arguments: " + " ".join(
            a + (opts.suggest(a.split("=")[0], flags) if a.startswith("-") else "")
            for a in arguments))

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}"
                                         f"{opts.suggest(str(value), choices)}; choose from "
                                         f"{', '.join(choices)}")


def build_parser(extra: Sequence[Method] = (), methods: bool = True) -> argparse.ArgumentParser:
    """The parser, with the options of every registered method (and of ``extra`` ones); with
    ``methods`` False, ``search`` has no options and the methods are not imported (what the
    other commands and ``deapnas --help`` need)."""
    parser = _Parser(
        prog="deapnas", description="Evolutionary neural architecture search with DEAP.",
        allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listed = _methods(extra) if methods else []
    search = commands.add_parser(
        "search", help="run a new search", allow_abbrev=False, formatter_class=_Formatter,
        description="Run a new architecture search. Without options: regularized evolution on "
                    "the macro space with its tiny preset, on the bundled digits (about three "
                    "minutes on two CPU cores); --preset paper gives the paper's settings.\n\n"
                    "Methods: " + "; ".join(f"{m.name}: {m.description}" for m in listed))
    if methods:
        _add_search_options(search, listed)

    resume = commands.add_parser("resume", help="continue an interrupted search")
    resume.add_argument("directory", help="the run directory (the --out of the search)")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")

    show = commands.add_parser("show", help="summarise a run (finished or running) and plot it")
    show.add_argument("directory", help="the run directory")

    train = commands.add_parser(
        "train", help="retrain the picked architecture longer and report its test accuracy",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    train.add_argument("directory", help="the run directory")
    train.add_argument("--epochs", type=_between(1, MAX_EPOCHS), default=None,
                       help="training epochs (default: those of an interrupted training, "
                            "else the method's final training; 20 for a method without one)")
    train.add_argument("--device", default=None, help="device (default: the run's)")
    train.add_argument("--channels", type=_between(1, MAX_CHANNELS), default=None,
                       help="network width of the retrained network (default: that of an "
                            "interrupted training, else the method's final training; the "
                            "search's for a method without one)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_dry_run(train, "training")
    export = commands.add_parser(
        "export", help="write the trained pick as a torch.export program (model.pt2) that "
                       "runs without deapnas, and its genome as JSON")
    export.add_argument("directory", help="the run directory (after `deapnas train`)")
    for command in (resume, show, train, export):
        command.add_argument("--algorithm", metavar="MODULE:ATTRIBUTE", help=(
            "the run's method when it is your own: deapnas imports a module only when you "
            "name it, never because a run directory does"))
    parser.commands = commands.choices  # so that errors name the command (see main)
    return parser


def _methods(extra: Sequence[Method]) -> list[Method]:
    """Every registered method, then those of ``extra`` not registered under their name."""
    from .methods import available, get_method

    return list({m.name: m for m in [*(get_method(n) for n in available()), *extra]}.values())


def _add_search_options(parser: argparse.ArgumentParser, methods: list[Method]) -> None:
    for title, names in GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            _add(group, RunConfig, name, _defaults(methods, name))
        if title == "what to search":
            group.add_argument("--preset", default="tiny", help=(
                "tiny: a CPU-sized search (the default); paper: the method's published "
                "settings. Options given explicitly win over the preset"))
        if title == "output":
            group.add_argument("--quiet", action="store_true", help="no progress bar")
            _add_dry_run(group, "search")
    training = {f.name for f in opts.fields(TrainingOptions)}
    trainers = [m for m in methods if issubclass(m.options, TrainingOptions)]
    group = parser.add_argument_group(
        "training each candidate (" + ", ".join(m.name for m in trainers) + ")")
    for f in opts.fields(TrainingOptions):
        _add(group, TrainingOptions, f.name, _defaults(trainers, f.name))
    users: dict[str, list[Method]] = {}  # each method option's methods, in order
    for method in methods:
        for f in opts.fields(method.options):
            if f.name not in training:
                users.setdefault(f.name, []).append(method)
    shared = [name for name, using in users.items() if len(using) > 1]
    if shared:
        group = parser.add_argument_group(
            "shared by several methods (each option's help names its methods)")
        for name in shared:
            _add(group, users[name][0].options, name, _defaults(users[name], name, named=True))
    for method in methods:
        own = [f.name for f in opts.fields(method.options) if users.get(f.name) == [method]]
        if own:
            group = parser.add_argument_group(f"{method.name} options")
        for name in own:
            _add(group, method.options, name, _defaults([method], name))


def _add_dry_run(group, what: str) -> None:
    group.add_argument("--dry-run", action="store_true", help=(
        f"check every setting and print what the {what} will do (trainings, FLOPs, activation "
        "memory, the data it needs), writing nothing"))
    group.add_argument("--calibrate", action="store_true", help=(
        "with --dry-run: time a few training steps on the device to turn FLOPs into hours"))


def _defaults(methods: list[Method], name: str, named: bool = False) -> str:
    """Each method's value under the tiny preset (the default) and the paper's, e.g.
    ``re: 25 (paper 100)`` (the paper's only for a method with a paper preset); one value when
    all methods agree, with their names when ``named``; empty when no method sets a value
    (None) or turns a yes/no option on."""
    values: dict[str, list[str]] = {}
    unset = True  # every method leaves it None or False
    for method in methods:
        default = getattr(method.options(), name, getattr(RunConfig(), name, None))
        paper = method.presets.get("paper", {}).get(name, default)
        tiny = method.presets.get("tiny", {}).get(name, default)
        unset = unset and all(v is None or v is False for v in (tiny, paper))
        text = _shown(name, tiny) + (f" (paper {_shown(name, paper)})"
                                     if "paper" in method.presets and tiny != paper else "")
        values.setdefault(text, []).append(method.name)
    if len(values) > 1:
        return "; ".join(f"{', '.join(names)}: {text}" for text, names in values.items())
    text, names = next(iter(values.items()))
    return "" if unset else f"{', '.join(names)}: {text}" if named else f"default: {text}"


def _shown(name: str, value: Any) -> str:
    """A value as help shows it: a yes/no option as the flag that gives it (``--no-flip``,
    ``--flip``), since ``True`` is ambiguous for an option named in the negative."""
    if not isinstance(value, bool):
        return f"{value}"
    if name.startswith("no_"):
        return opts.flag(name) if value else opts.flag(name[3:])
    return opts.flag(name) if value else "--no-" + opts.flag(name)[2:]


def _add(group, cls: type, name: str, defaults: str) -> None:
    field = next(f for f in opts.fields(cls) if f.name == name)
    kind = opts.types(cls)[name]
    shown = f" [{defaults}]" if defaults else ""
    bounds = f" ({opts.allowed(field)})" if field.metadata["maximum"] is not None else ""
    help_text = f"{field.metadata['help']}{shown}{bounds}".replace("%", "%%")
    if kind is bool and name.startswith("no_"):  # --no-flip, and --flip to undo a preset's
        group.add_argument(opts.flag(name), opts.flag(name[3:]), dest=name,
                           action=_Negated, default=argparse.SUPPRESS, help=help_text)
    elif kind is bool:  # --clamp-pools / --no-clamp-pools: a preset's True can be turned off
        group.add_argument(opts.flag(name), action=argparse.BooleanOptionalAction, dest=name,
                           default=argparse.SUPPRESS, help=help_text)
    else:
        choices = field.metadata["choices"]
        group.add_argument(opts.flag(name), type=kind if kind in (int, float) else str,
                           dest=name, default=argparse.SUPPRESS, help=help_text,
                           choices=choices,
                           metavar=None if choices else name.rstrip("_").upper())


class _Negated(argparse.Action):
    """A yes/no option named in the negative: ``--no-flip`` sets ``no_flip``, ``--flip``
    clears it."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, option_string == self.option_strings[0])


def _between(minimum: int, maximum: int):
    """An argparse type: an int from ``minimum`` to ``maximum``."""
    def parse(text: str) -> int:
        value = int(text)
        for bad, words in ((value < minimum, f"at least {minimum}"),
                           (value > maximum, f"at most {maximum}")):
            if bad:
                raise argparse.ArgumentTypeError(f"must be {words}, not {value} (allowed: "
                                                 f"{minimum} to {maximum})")
        return value
    return parse


def search_settings(args: argparse.Namespace) -> tuple[RunConfig, Any]:
    """The run config and options from the parsed ``search`` arguments: the method's preset,
    then every option given explicitly (:func:`deapnas.runner.settings`, which refuses an
    option the method does not use)."""
    from . import runner
    from .methods import get_method

    method = get_method(getattr(args, "algorithm", RunConfig.algorithm))
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "preset", "quiet", "dry_run", "calibrate")}
    config, options = runner.settings(method, args.preset, **given)
    if args.preset == "paper" and not config.tabular and \
            runner.resolve_device(config.first_device).type == "cpu":
        warnings.warn("--preset paper is sized for GPUs (the paper's datasets, networks and "
                      "budgets): on this CPU it may run for hours or days; see 'Paper-scale "
                      "searches' on the command-line page of the docs (docs/cli.rst)",
                      stacklevel=2)
    if config.tabular:
        unused = sorted(set(given) & {f.name for f in opts.fields(TrainingOptions)})
        if unused:
            raise ValueError(f"{', '.join(map(opts.flag, unused))}: a table search trains "
                             "nothing, so these have no effect")
    return config, options


def _interrupt(signum, frame) -> None:
    """SIGTERM ends a command like Ctrl-C (see :func:`_interrupted`)."""
    raise KeyboardInterrupt


def _interrupted(args: argparse.Namespace) -> str:
    """What an interrupted command left, in words."""
    where = getattr(args, "directory", None) or getattr(args, "started", None)
    if args.command in ("search", "resume"):
        from .rundir import CONFIG, resume_command

        if where and (Path(where) / CONFIG).exists():
            algorithm = getattr(args, "algorithm", None) or ""
            return ("interrupted: every finished evaluation is saved; continue with "
                    f"`{resume_command(where, algorithm)}`")
        return "interrupted before the search started; nothing was written"
    again = f"run `deapnas {args.command} {where}` again"
    return {"show": f"interrupted: the run is unchanged (its plots may be missing); {again}",
            "train": "interrupted: every finished epoch is saved; the training continues from "
                     f"the last one when you {again}",
            "export": f"interrupted: {where}/export may be incomplete; {again}"}[args.command]


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` with every control character (an ANSI escape, a carriage return...) written
    as an escape such as ``\\x1b``, so that what a run directory holds never reaches the
    terminal raw; newlines are kept when ``newlines``."""
    return "".join(c if (c == "\n" and newlines) or unicodedata.category(c)[0] != "C"
                   else c.encode("unicode_escape").decode("ascii") for c in text)


def _say(text: str, file=None) -> None:
    print(printable(text), file=file or sys.stdout)


def _pre_parse(argv: Sequence[str]) -> list[Method]:
    """A method named as ``module:ATTRIBUTE`` on the command line, imported so that its options
    join the parser."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--algorithm")
    known, _ = pre.parse_known_args(argv)
    if known.algorithm and ":" in known.algorithm:
        from .methods import get_method

        return [get_method(known.algorithm)]
    return []


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "deapnas")
    try:  # only search takes the methods' options: other commands do not import them
        extra = _pre_parse(argv)
        parser = build_parser(extra, methods=command == "search" or bool(extra))
    except ValueError as error:
        print(f"deapnas {command}: error: {error}", file=sys.stderr)
        return 2
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the command's parser: "deapnas search: error: ..."
        parser.commands[args.command].unrecognized(unknown)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _load(args.command)
        with warnings.catch_warnings():
            warnings.showwarning = _plain_warning(args.command)
            return _dispatch(args)
    except (ValueError, FileNotFoundError, SearchFailed) as error:
        print(printable(f"deapnas {args.command}: error: {error}", newlines=False),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n" + printable(_interrupted(args)), file=sys.stderr)
        return 130


def _load(command: str) -> None:
    """Import what ``command`` needs: the report (matplotlib) or, for ``train``, the
    retraining, and but for ``show``, which only reads files, the runner (torch, the methods;
    seconds). Part of torch's start-up is
    C++, where a Ctrl-C raised as ``KeyboardInterrupt`` aborts the process with a C++ error
    instead of a Python one; so a Ctrl-C meanwhile is only noted, and raised once the imports
    are done."""
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        if command == "train":
            from . import retraining  # noqa: F401
        else:
            from . import report  # noqa: F401
        if command != "show":
            from . import runner  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


def _plain_warning(command: str):
    """Warnings printed as ``deapnas COMMAND: warning: ...``, without the source line."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(printable(f"deapnas {command}: warning: {message}", newlines=False),
              file=file or sys.stderr)
    return show


def _dispatch(args: argparse.Namespace) -> int:
    from .methods import get_method

    if getattr(args, "dry_run", False) or getattr(args, "calibrate", False):
        from . import estimate
        plan = (estimate.search(*search_settings(args), calibrate=args.calibrate)
                if args.command == "search" else
                estimate.training(args.directory, args.epochs, args.device, args.channels,
                                  calibrate=args.calibrate))
        _say(plan.text())
    elif args.command == "search":
        from . import report, runner
        config, options = search_settings(args)
        args.started = config.out or runner.default_out(config, get_method(config.algorithm))
        runner.start(config, options, progress=not args.quiet)
        _say(report.summary(config.out))
    elif args.command == "resume":
        from . import report, runner
        runner.resume(args.directory, progress=not args.quiet)
        _say(report.summary(args.directory))
    elif args.command == "show":  # a run's files read once, for the summary and the plots
        from . import report
        run = (args.directory if report.is_journal(args.directory)
               else report.load_run(args.directory))
        _say(report.summary(run))
        for path in report.plots(run):
            _say(f"wrote {path}")
    elif args.command == "export":
        from .export import export
        _say(f"wrote {export(args.directory)}, genome.json and preprocessing.json; load it "
             "with torch.export.load(path).module(), give it raw pixel values (float32, as "
             "the dataset stores them: preprocessing.json says how it normalises them)")
    elif args.command == "train":
        from .retraining import retrain
        result = retrain(args.directory, args.epochs, args.device, args.channels,
                         progress=not args.quiet)
        _say(f"test accuracy {result['test_accuracy']:.4f} on {result['test_images']} images "
             f"after {result['epochs']} epochs ({result['params']:,} parameters); "
             f"weights in {Path(args.directory) / 'model.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


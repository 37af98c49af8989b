"""Each method's searches that a user can reproduce here, on a CPU, and their figures.

    python benchmarks/tiny_runs.py [METHOD ...] [--data digits mnist nb201] [--check]

For each method (by default every one), each part a file of its own:

``digits`` (``docs/figures/tiny_METHOD_digits``)
    its default search (the ``tiny`` preset) on scikit-learn's digits, then ``deapnas train``
    on the pick;
``mnist`` (``tiny_METHOD_mnist``)
    the same on MNIST (the 10,000 images of its official test split in
    ``../shared/data/mnist``), with smaller budgets where the tiny preset's would take long;
``nb201`` (``nb201_METHOD``)
    for the methods that search the NAS-Bench-201 table
    (``../shared/data/nas-bench-201/nb201.csv``), table searches over seeds, whose picks' test
    accuracies are given as mean +- sample standard deviation beside the published figures;
``nb201-digits`` (``nb201_digits_METHOD``)
    for EG-NAS, searches of the NAS-Bench-201 space with a supernet trained on digits over
    seeds, the derived cell looked up in the table.

A part whose data is absent is skipped with a message.

Every run is a real ``deapnas search`` and ``deapnas train`` (``deapnas.cli.main``, in this
process, on one CPU thread, so that the figures are deterministic) into a temporary folder.
The figures go to ``docs/figures/NAME.csv`` (with ``.json``), which the method pages and
``docs/results.rst`` include; CPU seconds (user + system, all
threads of this process, which is what an unloaded machine would need at most) and wall
seconds are reported, never compared.

``--check`` runs the same searches and compares their figures with the committed files
instead of writing them (timings left out): exit status 1, with a line per figure, when one
has changed.
"""
import argparse
import contextlib
import io
import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from deapnas.cli import main as deapnas

from figures import table_or_check

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST = SHARED / "mnist"
TABLE = SHARED / "nas-bench-201" / "nb201.csv"
MNIST_DATA = ("--dataset", "idx", "--data-dir", str(MNIST))
METRIC = "cifar10valid_xvalid_acc_200ep_mean"
REPORTED = {"CIFAR-10": "cifar10_test_acc_200ep", "CIFAR-100": "cifar100_xtest_acc_200ep",
            "ImageNet16-120": "imagenet16_xtest_acc_200ep"}
TABLE_DATA = ("--space", "nb201", "--dataset", "nb201", "--table", str(TABLE),
              "--metric", METRIC, "--report", ",".join(REPORTED.values()))
LOOKED_UP = ("--space", "nb201", "--table", str(TABLE), "--report", ",".join(REPORTED.values()))
SEEDS = range(5)
#: Published CIFAR-10 test accuracies of searches on the NAS-Bench-201 table (the figures
#: collected in ../shared/data/README.md).
PUBLISHED = {"re": ("REA, Dong & Yang 2020, a budget of 12,000 s of simulated training",
                    "93.92 ± 0.30"),
             "random": ("random search, Dong & Yang 2020", "93.70 ± 0.36"),
             "egnas": ("EG-NAS, Cai et al. 2024, a supernet search on CIFAR-10", "93.56 ± 0.02")}


@dataclass(frozen=True)
class Run:
    """One search and the final training of its pick: ``deapnas search --algorithm METHOD
    *data *search``, then ``deapnas train DIR *train``."""
    data: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    train: tuple[str, ...] = ()


#: Per method, its runs on digits (the tiny preset as it is) and MNIST (budgets made smaller
#: where the preset's would take long on a CPU), and the options of its searches over seeds
#: whose picks are looked up in the NAS-Bench-201 table (``nb201``, ``nb201-digits``).
RUNS = {
    "re": {"digits": Run(),
           "mnist": Run(MNIST_DATA, ("--evaluations", "30", "--epochs", "1"), ("--epochs", "3")),
           "nb201": (*TABLE_DATA, "--evaluations", "300")},
    "minigen": {"digits": Run(),
                "mnist": Run(MNIST_DATA, ("--evaluations", "30"), ("--epochs", "3"))},
    "nasgep": {"digits": Run(),
               "mnist": Run(MNIST_DATA, ("--evaluations", "30"), ("--epochs", "10"))},
    "egnas": {"digits": Run(),
              "mnist": Run(MNIST_DATA, ("--epochs", "2"), ("--epochs", "3")),
              "nb201": (*TABLE_DATA, "--preset", "paper"), "nb201-digits": LOOKED_UP},
    "renas": {"digits": Run(),
              "mnist": Run(MNIST_DATA, ("--train-per-class", "30", "--epochs", "2"),
                           ("--epochs", "2")),
              "nb201": (*TABLE_DATA, "--evaluations", "100")},
    "random": {"nb201": (*TABLE_DATA, "--evaluations", "300")},
}
#: The data each part needs (None: bundled).
PARTS = {"digits": None, "mnist": MNIST, "nb201": TABLE, "nb201-digits": TABLE}

TINY_HEADER = ["figure", "value"]
TABLE_HEADER = ["seed", "pick", "validation (%)", *(f"{name} test (%)" for name in REPORTED)]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str]) -> dict:
    """``deapnas ARGV`` in this process, its output kept from the terminal: CPU and wall
    seconds; a failed command ends the script with its error output."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        code = deapnas(argv)
    if code != 0:
        raise SystemExit(f"deapnas {' '.join(argv)}: exit {code}\n{errors.getvalue()}")
    return {"cpu_seconds": round(cpu_seconds() - cpu, 1),
            "wall_seconds": round(time.perf_counter() - wall, 1)}


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def shown(argv: tuple[str, ...] | list[str]) -> str:
    """A command as the docs print it (the shared data relative to the repository)."""
    return " ".join(argv).replace(str(SHARED), "../shared/data")


def tiny_run(method: str, run: Run, folder: Path) -> dict:
    """The figures of one search and the final training of its pick."""
    out = folder / method
    search = ["search", "--algorithm", method, *run.data, *run.search, "--quiet"]
    train = ["train", str(out), *run.train, "--quiet"]
    searched = timed([*search, "--out", str(out)])
    trained = timed(train)
    best, result = read(out / "best.json"), read(out / "train.json")
    return {"commands": [f"deapnas {shown(search)} --out DIR",
                         f"deapnas {shown(['train', 'DIR', *run.train])}"],
            "pick": best["genome"], "evaluations": best["evaluations"],
            "fitness": round(best["fitness"], 4), "metric": best["metric"],
            "params": best["params"], "test_accuracy": round(result["test_accuracy"], 4),
            "trained_params": result["params"], "trained_epochs": result["epochs"],
            "search_cpu_seconds": searched["cpu_seconds"],
            "search_wall_seconds": searched["wall_seconds"],
            "train_cpu_seconds": trained["cpu_seconds"],
            "train_wall_seconds": trained["wall_seconds"]}


def tiny_rows(run: dict) -> list[list]:
    """The table of a run, one figure a row (timings in the rows named so)."""
    search, train = run["commands"]
    return [["search", f"``{search}``"], ["evaluations", run["evaluations"]],
            [f"the pick's fitness ({run['metric']})", run["fitness"]],
            ["the pick's parameters", f"{run['params']:,}"],
            ["final training", f"``{train}``"],
            [f"test accuracy after {run['trained_epochs']} epochs", run["test_accuracy"]],
            ["the trained network's parameters", f"{run['trained_params']:,}"],
            ["search CPU seconds", run["search_cpu_seconds"]],
            ["search wall seconds", run["search_wall_seconds"]],
            ["train CPU seconds", run["train_cpu_seconds"]],
            ["train wall seconds", run["train_wall_seconds"]]]


def table_search(method: str, options: tuple[str, ...], seed: int, folder: Path) -> dict:
    """The pick of one search whose pick is looked up in the table, and its figures."""
    out = folder / f"{method}-nb201-{seed}"
    seconds = timed(["search", "--algorithm", method, *options, "--seed", str(seed), "--quiet",
                     "--out", str(out)])
    best = read(out / "best.json")
    return {"seed": seed, "pick": best["genome"], "validation": round(best["fitness"], 2)
            if best["metric"] == METRIC else None,
            **{name: round(best["report"][column], 2) for name, column in REPORTED.items()},
            "cpu_seconds": seconds["cpu_seconds"]}


def mean_sd(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def table_rows(method: str, options: tuple[str, ...], searches: list[dict]) -> list[list]:
    """The command, a row per seed, their mean ± s.d. and the published figure (if any)."""
    blank = [""] * len(REPORTED)
    command = f"deapnas search --algorithm {method} {shown(options)} --seed SEED"
    rows = [["command", f"``{command}``", "", *blank]]
    rows += [[s["seed"], f"``{s['pick']}``", s["validation"], *(s[n] for n in REPORTED)]
             for s in searches]
    rows.append([f"mean ± s.d. over {len(searches)} seeds", "", "",
                 *(mean_sd([s[n] for s in searches]) for n in REPORTED)])
    if method in PUBLISHED and TABLE_DATA == options[:len(TABLE_DATA)]:
        source, cifar10 = PUBLISHED[method]
        rows.append(["published", source, "", cifar10, *blank[1:]])
    return rows


def measure(method: str, part: str) -> tuple[str, list, list, dict]:
    """The figures of one part of ``method``'s runs (see the module's docstring): ``(name,
    header, rows, results)`` for :func:`~figures.write_table`; torch on one thread from here
    on."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        if not part.startswith("nb201"):
            run = tiny_run(method, RUNS[method][part], Path(folder))
            return f"tiny_{method}_{part}", TINY_HEADER, tiny_rows(run), run
        options = RUNS[method][part]
        searches = [table_search(method, options, seed, Path(folder)) for seed in SEEDS]
    return f"{part.replace('-', '_')}_{method}", TABLE_HEADER, \
        table_rows(method, options, searches), {"searches": searches}


def parts(methods: list[str], wanted: list[str]) -> list[tuple[str, str]]:
    """``(method, part)`` of ``methods`` (all when none) for each part in ``wanted`` (all
    when none) that the method has and whose data is here; says which are skipped."""
    chosen = []
    for part in wanted or PARTS:
        for method in methods or RUNS:
            if part not in RUNS[method]:
                continue
            if PARTS[part] is not None and not PARTS[part].exists():
                print(f"{method} {part}: skipped, {PARTS[part]} is absent", file=sys.stderr)
                continue
            chosen.append((method, part))
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("methods", nargs="*", help=f"{', '.join(RUNS)} (default: all)")
    parser.add_argument("--data", nargs="+", choices=PARTS, default=[],
                        help="the parts to run (default: all; digits first, then the others)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed figures instead of writing them")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - RUNS.keys())
    if unknown:
        parser.error(f"no tiny runs for {', '.join(unknown)}; choose among {', '.join(RUNS)}")
    changed = [line for method, part in parts(args.methods, args.data)
               for line in table_or_check(*measure(method, part), check=args.check)]
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())

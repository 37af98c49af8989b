"""Anytime curves on the NAS-Bench-201 table: for each search method and seed, the test
accuracy of the architecture with the best *validation* accuracy so far, against the number of
table queries, as the NAS-Bench-201 paper reports its searches.

    python benchmarks/bench_nb201_anytime.py [--seeds 20] [--queries 500]
        [--methods random re renas egnas re+params] [--warmup-samples 250] [--proposals 1]

Every search is a real ``deapnas search`` on the table (``deapnas.cli.main``, in this process),
searching on the 12-epoch CIFAR-10 validation accuracy (``cifar10valid_xvalid_acc_12ep``, the
fitness of the paper's REA) and reporting the 200-epoch test accuracies of CIFAR-10, CIFAR-100
and ImageNet16-120 (``--report``). Each run directory goes to a temporary folder; its
``history.jsonl`` gives the curve: after query n, the record with the highest validation
accuracy among the first n (the first one on ties) and its report columns. The validation
accuracy is the table's, looked up by the record's key, since EG-NAS's fitness is its own
compound score. ``re+params`` is regularized evolution guided by the parameter count
(``--warmup-proxy params``): its proxy scores are not queries; their cost is the guided run's
time less plain RE's on the same seed, reported apart. ``--methods`` may give a method's own
``--seeds`` as ``NAME:SEEDS`` (``renas:5``), for the slow ones.

The figures go to ``docs/figures/NAME.json`` (``--name``, by default ``nb201_anytime``;
rewritten after every method, so an interrupted run keeps the methods it finished) and the
curves to ``docs/figures/NAME.png``.
"""
import argparse
import contextlib
import csv
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from deapnas.cli import main

from figures import FIGURES, write_figures

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nas-bench-201" / "nb201.csv"
VALIDATION = "cifar10valid_xvalid_acc_12ep"
REPORTED = {"cifar10": "cifar10_test_acc_200ep", "cifar100": "cifar100_xtest_acc_200ep",
            "imagenet16-120": "imagenet16_xtest_acc_200ep"}
CHECKPOINTS = (25, 50, 100, 200, 500)
PUBLISHED = {"source": "Dong & Yang, NAS-Bench-201, ICLR 2020 (Table 5), CIFAR-10 test accuracy",
             "budget": "12,000 s of simulated training time",
             "REA": "93.92 +- 0.30", "random": "93.70 +- 0.36"}


def method_arguments(name: str, warmup_samples: int, proposals: int) -> list[str]:
    """The command-line options of a method of this benchmark."""
    if name == "re+params":
        return ["--algorithm", "re", "--warmup-proxy", "params",
                "--warmup-samples", str(warmup_samples), "--proposals", str(proposals)]
    return ["--algorithm", name]


def search(table: Path, arguments: list[str], queries: int, seed: int, out: Path) -> float:
    """Seconds of one table search of ``queries`` look-ups into the run directory ``out``."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the summaries
        code = main(["search", *arguments, "--space", "nb201", "--dataset", "nb201",
                     "--table", str(table), "--metric", VALIDATION,
                     "--report", ",".join(REPORTED.values()), "--evaluations", str(queries),
                     "--seed", str(seed), "--out", str(out), "--quiet"])
    if code != 0:
        raise SystemExit(f"deapnas search {' '.join(arguments)} --seed {seed}: exit {code}")
    return time.perf_counter() - start


def anytime(history: Path, validation: dict[str, float], queries: int) -> list[dict]:
    """For n = 1..queries, the report columns of the best-by-validation record of the first n
    (a failed record is a query that finds nothing)."""
    curve, best, best_value = [], None, float("-inf")
    with open(history, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    for record in records[:queries]:
        value = validation.get(record["key"], float("-inf")) if record["fitness"] else None
        if value is not None and value > best_value:
            best, best_value = record, value
        curve.append({name: best["info"][column] for name, column in REPORTED.items()}
                     if best else None)
    return curve


def mean_and_error(values: list[float]) -> dict:
    error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None
    return {"mean": round(statistics.fmean(values), 3),
            "se": None if error is None else round(error, 3)}


def at(curves: list[list[dict]], n: int, dataset: str) -> list[float]:
    """Each seed's accuracy on ``dataset`` after ``n`` queries."""
    return [curve[n - 1][dataset] for curve in curves if len(curve) >= n and curve[n - 1]]


def summary(curves: list[list[dict]], queries: int) -> dict:
    """Mean and standard error over seeds, per dataset, at each checkpoint."""
    return {dataset: {str(n): mean_and_error(at(curves, n, dataset))
                      for n in CHECKPOINTS if n <= queries and at(curves, n, dataset)}
            for dataset in REPORTED}


def first_reaching(curves: list[list[dict]], target: float, queries: int) -> int | None:
    """The fewest queries after which the mean CIFAR-10 accuracy over seeds reaches
    ``target``."""
    return next((n for n in range(1, queries + 1)
                 if at(curves, n, "cifar10")
                 and statistics.fmean(at(curves, n, "cifar10")) >= target), None)


def comparison(curves: dict, queries: int) -> dict | None:
    """Does proxy-guided RE reach plain RE's 100-query mean in at most 50 queries?"""
    if not {"re", "re+params"} <= curves.keys() or queries < 100:
        return None
    target = statistics.fmean(at(curves["re"], 100, "cifar10"))
    guided = statistics.fmean(at(curves["re+params"], 50, "cifar10"))
    return {"re_at_100": round(target, 3), "re+params_at_50": round(guided, 3),
            "difference": round(guided - target, 3), "reached": guided >= target,
            "re+params_reaches_it_after": first_reaching(curves["re+params"], target, queries)}


def summary_of(curves: dict, queries: int) -> dict:
    return {method: summary(runs, queries) for method, runs in curves.items()}


def proxy_seconds(seconds: dict) -> dict | None:
    """The proxy's cost per guided search: its time less plain RE's on the same seed."""
    if not {"re", "re+params"} <= seconds.keys():
        return None
    pairs = list(zip(seconds["re+params"], seconds["re"]))
    return mean_and_error([guided - plain for guided, plain in pairs])


def plot(curves: dict, queries: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(REPORTED), figsize=(5 * len(REPORTED), 4))
    steps = range(1, queries + 1)
    for axis, dataset in zip(axes, REPORTED):
        for method, runs in curves.items():
            present = [n for n in steps if len(at(runs, n, dataset)) > 1]
            means = [statistics.fmean(at(runs, n, dataset)) for n in present]
            errors = [statistics.stdev(at(runs, n, dataset)) / len(at(runs, n, dataset)) ** 0.5
                      for n in present]
            line, = axis.plot(present, means, label=f"{method} ({len(runs)} seeds)")
            axis.fill_between(present, [m - e for m, e in zip(means, errors)],
                              [m + e for m, e in zip(means, errors)], alpha=0.2,
                              color=line.get_color())
        if dataset == "cifar10":
            axis.axhline(93.92, color="black", linestyle="--", linewidth=0.8,
                         label="REA, published")
            axis.axhline(93.70, color="grey", linestyle=":", linewidth=0.8,
                         label="random, published")
        axis.set(xscale="log", xlabel="table queries", ylabel=f"{dataset} test accuracy (%)",
                 title=dataset)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle("The test accuracy of the pick (best CIFAR-10 12-epoch validation so far) "
                    "after each table query: mean and standard error over the seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_methods(names: list[str], seeds: int) -> dict[str, int]:
    """``NAME`` or ``NAME:SEEDS`` -> seeds per method."""
    return {name.split(":")[0]: int(name.split(":")[1]) if ":" in name else seeds
            for name in names}


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 per method")
    parser.add_argument("--queries", type=int, default=500, help="table queries per search")
    parser.add_argument("--methods", nargs="+",
                        default=["random", "re", "renas", "egnas", "re+params"],
                        help="random, re, renas, egnas, re+params; NAME:SEEDS for fewer seeds")
    parser.add_argument("--warmup-samples", type=int, default=250,
                        help="re+params: random cells ranked by the proxy for the first "
                             "population (deapnas's default, 10 x the population of 25)")
    parser.add_argument("--proposals", type=int, default=1,
                        help="re+params: mutants ranked by the proxy per child (1: warm-up "
                             "only; each proposal costs a network built and counted)")
    parser.add_argument("--name", default="nb201_anytime",
                        help="the figures' name: docs/figures/NAME.json and NAME.png")
    args = parser.parse_args()
    with open(args.table, newline="", encoding="utf-8") as handle:
        validation = {row["arch_str"]: float(row[VALIDATION]) for row in csv.DictReader(handle)}
    curves, seconds = {}, {}
    results = {"validation": VALIDATION, "reported": REPORTED, "queries": args.queries,
               "published": PUBLISHED,
               "settings": "deapnas defaults: re and re+params population 25, sample size 5; "
                           f"re+params --warmup-samples {args.warmup_samples} --proposals "
                           f"{args.proposals}"}
    with tempfile.TemporaryDirectory() as folder:
        for method, seeds in parse_methods(args.methods, args.seeds).items():
            arguments = method_arguments(method, args.warmup_samples, args.proposals)
            curves[method], seconds[method] = [], []
            for seed in range(seeds):
                out = Path(folder) / f"{method}-{seed}"
                seconds[method].append(search(args.table, arguments, args.queries, seed, out))
                curves[method].append(anytime(out / "history.jsonl", validation, args.queries))
            print(f"{method}: {seeds} seeds in {sum(seconds[method]):.0f} s", flush=True)
            results.update(seeds={m: len(c) for m, c in curves.items()},
                           test_accuracy=summary_of(curves, args.queries),
                           seconds_per_search={m: mean_and_error(s) for m, s in seconds.items()},
                           proxy_seconds=proxy_seconds(seconds),
                           guided_vs_re=comparison(curves, args.queries))
            write_figures(args.name, results)
            plot(curves, args.queries, FIGURES / f"{args.name}.png")
    print(json.dumps({k: results[k] for k in ("test_accuracy", "proxy_seconds",
                                              "guided_vs_re")}, indent=1))


if __name__ == "__main__":
    main_()

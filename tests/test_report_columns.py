"""``--report`` with several table columns: NAS-Bench-201's test accuracies on CIFAR-10,
CIFAR-100 and ImageNet16-120 recorded together in best.json and shown by ``deapnas show``."""
import csv
import json

import pytest

from deapnas.cli import main
from deapnas.rundir import BEST, HISTORY, read_history

from conftest import NB201_METRIC

COLUMNS = ("cifar10_test_acc_200ep", "cifar100_xtest_acc_200ep", "imagenet16_xtest_acc_200ep")


def table_search(csv_path, out, report: str, *extra: str) -> list[str]:
    return ["search", "--space", "nb201", "--dataset", "nb201", "--table", str(csv_path),
            "--metric", NB201_METRIC, "--report", report, "--evaluations", "30",
            "--population", "10", "--sample-size", "3", "--out", str(out), "--quiet", *extra]


def table_row(csv_path, key: str) -> dict:
    with open(csv_path, newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["arch_str"] == key)


def test_several_report_columns_are_recorded_and_shown(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(table_search(nb201_csv, out, ",".join(COLUMNS))) == 0
    best = json.loads((out / BEST).read_text())
    row = table_row(nb201_csv, best["key"])
    assert best["report"] == {column: float(row[column]) for column in COLUMNS}
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    for column in COLUMNS:
        assert f"{column}: {float(row[column]):.4f}" in shown


def test_report_columns_reach_the_history_of_a_table_search(nb201_csv, tmp_path):
    out = tmp_path / "egnas"
    argv = table_search(nb201_csv, out, " , ".join(COLUMNS[1:]))
    argv[argv.index("--population"):argv.index("--population") + 4] = []  # re's options
    assert main([*argv, "--algorithm", "egnas", "--preset", "tiny"]) == 0
    history = read_history(out)
    record = next(r for r in history if r.get("reason") is None)
    row = table_row(nb201_csv, record["key"])
    assert {c: record["info"][c] for c in COLUMNS[1:]} == {c: float(row[c]) for c in COLUMNS[1:]}
    assert set(json.loads((out / BEST).read_text())["report"]) == set(COLUMNS[1:])


@pytest.mark.parametrize("report, expected", [
    (f"{COLUMNS[0]},cifar100_xtest_acc_200e", "did you mean 'cifar100_xtest_acc_200ep'"),
    (f"{COLUMNS[0]},{COLUMNS[0]}", "each once"),
    (",", "each once"),
])
def test_a_wrong_report_column_is_refused_before_the_search(nb201_csv, tmp_path, capsys,
                                                            report, expected):
    out = tmp_path / "refused"
    assert main(table_search(nb201_csv, out, report)) == 2
    error = capsys.readouterr().err
    assert expected in error and "--report" in error
    assert not out.exists() and not (out / HISTORY).exists()

"""Rough edges a new user met: the macro space on small images (``clamp_pools``), API calls
that failed with confusing errors, multi-objective search and the command line."""

import json
from types import SimpleNamespace

import pytest
import torch
from deap import tools
from torch import nn

from conftest import NB201_METRIC, NB201_REPORT, chain_genome
from deapnas.cli import main
from deapnas.fitness import TableEvaluator
from deapnas.compiler import compile_graph, infer_shapes
from deapnas.graph import InvalidGraphError
from deapnas.networks import count_parameters
from deapnas.ops import get_op
from deapnas.rundir import CONFIG, PARETO, read_history
from deapnas.spaces import macro, nb201


pytestmark = pytest.mark.usefixtures("seeded")


# -- clamped pools ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("kernel", [2, 3, 5])
@pytest.mark.parametrize("size", [1, 2, 4, 5, 9, 12])
def test_clamped_pool_matches_its_shape_rule_and_the_plain_pool(kind, kernel, size):
    op = get_op("pool")
    x = torch.randn(2, 3, size, size + 1)
    clamped = op.build(3, kind=kind, kernel=kernel, clamp=True)(x)
    assert tuple(clamped.shape[1:]) == op.output_shape((3, size, size + 1), kind=kind,
                                                       kernel=kernel, clamp=True)
    if size >= kernel:  # a pool that fits is pooled exactly as without clamping
        torch.testing.assert_close(clamped, op.build(3, kind=kind, kernel=kernel)(x))
    else:
        with pytest.raises(ValueError, match="collapses"):
            op.output_shape((3, size, size + 1), kind=kind, kernel=kernel)


def test_a_clamped_pool_smaller_than_its_input_pools_the_whole_input():
    x = torch.randn(4, 2, 3, 3)
    out = get_op("pool").build(2, kind="max", kernel=5, clamp=True)(x)
    torch.testing.assert_close(out, x.amax(dim=(2, 3), keepdim=True))
    out = get_op("pool").build(2, kind="avg", kernel=5, clamp=True)(x)
    torch.testing.assert_close(out, x.mean(dim=(2, 3), keepdim=True))


def test_a_clamped_pool_takes_no_padding():
    with pytest.raises(ValueError, match="no padding"):
        get_op("pool").build(2, kind="max", kernel=3, padding=1, clamp=True)


def test_clamp_pools_saves_macro_genomes_that_collapse_small_images():
    genome = chain_genome("POOL_5.M", "CONV_3.N", "POOL_5.A")
    with pytest.raises(InvalidGraphError, match="collapses"):
        infer_shapes(macro.to_graph(genome), [(1, 8, 8)])
    assert infer_shapes(macro.to_graph(genome, clamp_pools=True), [(1, 8, 8)])[macro.OUTPUT] \
        == (64, 1, 1)
    net = macro.build_network(genome, (1, 8, 8), 10, channels=8, clamp_pools=True)
    assert net(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_clamp_pools_is_off_by_default_and_a_network_option():
    genome = chain_genome("POOL_2.A", "CONV_3.H")
    plain = macro.to_graph(genome)
    assert "clamp" not in plain.nodes[0]["args"]  # the paper's pools, and their keys, unchanged
    assert plain.nodes[0]["args"] == macro.to_graph(genome, clamp_pools=False).nodes[0]["args"]
    options = SimpleNamespace(channels=16, clamp_pools=True)
    assert macro.SPACE.network_kwargs(options) == {"channels": 16, "clamp_pools": True}


def test_no_fresh_macro_genome_collapses_digits_with_clamp_pools():
    collapsed = {False: 0, True: 0}
    for _ in range(200):
        genome = macro.init_genome()
        for clamp in collapsed:
            try:
                infer_shapes(macro.to_graph(genome, clamp_pools=clamp), [(1, 8, 8)])
            except InvalidGraphError as error:
                assert "collapses" in str(error)
                collapsed[clamp] += 1
    assert collapsed[True] == 0 and collapsed[False] > 0


# -- API calls that used to fail confusingly -----------------------------------------------------

def test_count_parameters_takes_a_module_or_a_builder():
    def build():
        return macro.build_network(chain_genome("CONV_3.N"), (1, 8, 8), 10, channels=8)
    module = build()
    real = sum(p.numel() for p in module.parameters())
    assert count_parameters(module) == count_parameters(build) == real
    with pytest.raises(TypeError, match="nn.Module or a function"):
        count_parameters(42)


@pytest.mark.parametrize("shapes", [[(8, 8)], [(1, 8, 8, 1)], [8], [(1, 0, 8)]])
def test_malformed_input_shapes_raise_invalid_graph_error(shapes):
    graph = macro.to_graph(chain_genome("CONV_3.N"))
    with pytest.raises(InvalidGraphError, match=r"\(channels, height, width\)"):
        infer_shapes(graph, shapes)
    with pytest.raises(InvalidGraphError, match=r"\(channels, height, width\)"):
        compile_graph(graph, shapes)


def test_nb201_strings_become_individuals_ready_for_a_toolbox():
    text = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    cell = nb201.from_arch_string(text)
    assert isinstance(cell, nb201.SPACE.individual()) and cell == nb201.from_json(text)
    cell.fitness.values = (0.9,)
    hof = tools.HallOfFame(1)
    hof.update([cell])
    assert hof[0] == cell and nb201.arch_string(hof[0]) == text
    assert type(nb201.from_arch_string(text, list)) is list
    assert isinstance(nb201.build_network(cell, (3, 8, 8), 10, channels=4, cells_per_stage=1),
                      nn.Module)


# -- multi-objective search and the command line a new user meets --------------------------------

def table_search(csv, out, *extra):
    return main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(csv),
                 "--metric", NB201_METRIC, "--evaluations", "60", "--population", "10",
                 "--out", str(out), "--quiet", *extra])


def test_pareto_json_holds_exactly_the_non_dominated_records(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert table_search(nb201_csv, out, "--objectives", "accuracy,params") == 0
    history = read_history(out)
    values = {r["evaluation"]: r["fitness"] for r in history if r["reason"] is None}
    assert all(len(v) == 2 and v[1] > 1000 for v in values.values())  # parameters, not millions

    def dominated(a):  # more accuracy is better, fewer parameters too
        return any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in values.values())

    front = json.loads((out / PARETO).read_text())
    assert front["objectives"] == ["accuracy", "params"]
    assert {r["evaluation"] for r in front["front"]} == \
        {e for e, v in values.items() if not dominated(v)
         and min(f for f, w in values.items() if w == v) == e}  # an equal pair: the first
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"Pareto front: {len(front['front'])} architecture(s)" in shown
    assert (out / "pareto.png").exists()


def test_the_command_line_says_what_a_table_run_searched_and_warns_plainly(nb201_csv,
                                                                           tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--space", "nb201", "--dataset", "nb201", "--table", str(nb201_csv),
                 "--metric", NB201_REPORT, "--evaluations", "30", "--population", "10",
                 "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"table {nb201_csv} ({NB201_REPORT})" in captured.out
    assert "dataset digits" not in captured.out
    assert "deapnas search: warning: --metric cifar10_test_acc_200ep looks like a test column" \
        in captured.err and "UserWarning" not in captured.err
    assert json.loads((out / CONFIG).read_text())["run"]["metric"] == NB201_REPORT


def test_resume_takes_quiet_and_an_unfinished_run_shows_what_to_do(nb201_csv, tmp_path,
                                                                   capsys, monkeypatch):
    out = tmp_path / "run"
    real = TableEvaluator.__call__

    def stop_at_20(self, individual, calls=[0]):
        calls[0] += 1
        if calls[0] > 20:
            raise KeyboardInterrupt
        return real(self, individual)

    monkeypatch.setattr(TableEvaluator, "__call__", stop_at_20)
    assert table_search(nb201_csv, out) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    assert f"continue it with `deapnas resume {out}`" in capsys.readouterr().out
    assert main(["resume", str(out), "--quiet"]) == 0 and len(read_history(out)) == 60


def test_errors_name_the_command_and_help_shows_defaults(capsys):
    with pytest.raises(SystemExit, match="2"):
        main(["search", "--bogus"])
    assert "deapnas search: error: unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert "random seed of the run [default: 0]" in " ".join(capsys.readouterr().out.split())


def test_train_past_the_parameter_cap_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--evaluations", "6", "--population", "5", "--sample-size", "2",
                 "--epochs", "1", "--channels", "4", "--out", str(out), "--quiet"]) == 0
    assert main(["train", str(out), "--channels", "4096", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "deapnas train: error:" in err and "--channels" in err and "Traceback" not in err
    assert not (out / "model.pt").exists()


def test_the_summary_takes_the_best_under_the_runs_own_weights(nb201_csv, tmp_path, capsys):
    out = tmp_path / "run"  # parameters first: the best single fitness is the fewest
    assert table_search(nb201_csv, out, "--objectives", "params,accuracy") == 0
    fewest = min(r["fitness"][0] for r in read_history(out) if r["reason"] is None)
    assert f"best single fitness {fewest:.4f}" in capsys.readouterr().out

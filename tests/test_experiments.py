"""The experiment scripts import, and their presets fill every option (``--tiny`` and the
paper's); each script's own run is measured in its method's docs page."""
import importlib
import sys
from pathlib import Path

import pytest

from deapnas import runner
from deapnas.methods import renas

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
pytestmark = pytest.mark.filterwarnings("ignore:A class named:RuntimeWarning")  # scripts call creator.create
SCRIPTS = ("egnas", "minigen", "nasgep", "regularized_evolution_macro", "renas")


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))

    def load(name):
        sys.modules.pop(name, None)
        return importlib.import_module(name)
    return load


PRESETS = {"renas": None}  # its settings are the registered method's: see the next test


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("tiny", [True, False])
def test_a_script_fills_its_options_from_a_preset(script, name, tiny):
    module = script(name)
    extra = ["--evaluations", "10"] if name == "nasgep" and not tiny else []
    args = module.parse_args(["--tiny"] * tiny + extra + ["--seed", "3", "--device", "cpu"])
    assert args.seed == 3 and args.device == "cpu"
    assert args.out.startswith("runs/") and "seed3" in args.out
    names = PRESETS.get(name, ("TINY", "PAPER"))
    if names:
        preset = getattr(module, names[0 if tiny else 1])
        given = {"evaluations"} if extra else set()
        assert {k: getattr(args, k) for k in preset if k not in given} == \
            {k: v for k, v in preset.items() if k not in given}


@pytest.mark.parametrize("tiny", [True, False])
def test_the_renas_script_takes_the_registered_methods_presets(script, tiny):
    module = script("renas")
    config, options = module.settings(module.parse_args(["--tiny"] * tiny + ["--seed", "3"]))
    expected = runner.settings(renas.METHOD, "tiny" if tiny else "paper", seed=3)
    assert options == expected[1] and config.dataset == expected[0].dataset


def test_a_script_refuses_an_out_made_with_other_settings_in_one_line(script, nb201_csv,
                                                                      tmp_path, capsys):
    """The refusal comes when the journal restores its checkpoint, inside the search: it ends
    the script with the journal's message, not a traceback."""
    module = script("egnas")
    table = ["--tiny", "--space", "nb201", "--table", str(nb201_csv), "--table-only",
             "--epochs", "2", "--warmup", "0", "--out", str(tmp_path), "--quiet"]
    module.main(table)
    with pytest.raises(SystemExit) as stop:
        module.main(table + ["--seed", "4"])
    assert str(stop.value).startswith("error: ") and "seed: 0 -> 4" in str(stop.value)

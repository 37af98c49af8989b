"""Early termination of trained fitness (TrainEvaluator(stop_below_rank=k), --stop-below-rank):
a candidate below the k-th best of the earlier candidates after an epoch stops there."""
import functools
import json

import pytest

from deapnas.cli import main
from deapnas.data import mini_dataset
from deapnas.fitness import RankStop, TrainEvaluator, failed
from deapnas.rundir import CONFIG, read_history
from deapnas.spaces import nb201

#: A tiny NAS-Bench-201 network; LIVE learns, DEAD's output ignores its input (every edge 'none'
#: but a pool fed by nothing), so it stays at chance.
tiny_nb201 = functools.partial(nb201.build_network, channels=4, cells_per_stage=1)
LIVE = ["nor_conv_3x3", "none", "none", "nor_conv_3x3", "nor_conv_1x1", "skip_connect"]
DEAD = ["none", "none", "none", "none", "none", "avg_pool_3x3"]


@pytest.fixture(scope="module")
def few_digits(digits):
    """A small stratified part of the bundled digits: 30 training and 20 validation images
    of each class."""
    return mini_dataset(digits, train_per_class=30, score_per_class=20)


def test_the_rule_stops_below_the_kth_best_of_earlier_candidates_after_the_same_epoch():
    rule = RankStop(2)
    assert rule.observe(1, 0.5) is None and rule.observe(1, 0.7) is None  # too few to rank
    assert rule.observe(1, 0.6) is None  # 0.6 >= 0.5, the second best of 0.5 and 0.7
    reason = rule.observe(1, 0.55)  # below 0.6, the second best of 0.5, 0.7 and 0.6
    assert "after epoch 1" in reason and "0.5500" in reason and "0.6000" in reason
    assert rule.observe(2, 0.1) is None  # epoch 2 has no record yet
    assert rule.observe(1, 0.6) is None  # equal to the threshold: goes on
    with pytest.raises(ValueError, match="at least 1"):
        RankStop(0)


def evaluator(data, **options):
    return TrainEvaluator(tiny_nb201, data, epochs=3, batch_size=16, lr=0.01, device="cpu",
                          **options)


def test_a_candidate_below_the_best_stops_and_keeps_its_accuracy(few_digits):
    evaluate = evaluator(few_digits, stop_below_rank=1)
    live = evaluate(LIVE)
    assert live.info["epochs"] == 3 and "stopped" not in live.info
    dead = evaluate(DEAD)
    assert not failed(dead) and dead.info["epochs"] == 1
    assert "after epoch 1" in dead.info["stopped"] and dead[0] < live[0]
    assert dead.info["accuracy"] == dead[0]  # the accuracy after the epoch it stopped at
    again = evaluate(LIVE)  # as good as the best after every epoch: trains to the end
    assert again.info["epochs"] == 3 and "stopped" not in again.info
    plain = evaluator(few_digits)
    plain(LIVE)
    assert plain(DEAD).info["epochs"] == 3  # off by default
    assert evaluate.settings()["stop_below_rank"] == 1
    assert "stop_below_rank" not in plain.settings()  # a journal's fingerprint is as before


def test_stop_below_rank_from_the_command_line_is_recorded(tmp_path):
    out = tmp_path / "stopping"
    assert main(["search", "--space", "nb201", "--evaluations", "4", "--population", "2",
                 "--sample-size", "1", "--epochs", "2", "--channels", "4", "--cells", "1",
                 "--stop-below-rank", "1", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / CONFIG).read_text())["options"]["stop_below_rank"] == 1
    history = read_history(out)
    assert len(history) == 4
    assert all(r["info"]["epochs"] == (1 if "stopped" in r["info"] else 2) for r in history)

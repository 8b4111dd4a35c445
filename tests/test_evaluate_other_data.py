"""``avf evaluate --dataset``: a trained music model scored on another data set (no shared data
needed: the songs are written here), without touching the score on its own data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import avf
from avf.cli import main
from avf.config import from_dict
from avf.evaluation import evaluate
from avf.runs import dataset_label, with_dataset
from conftest import climbing_songs as songs
from conftest import tiny_music_args

MUSIC = Path(__file__).resolve().parents[1] / "experiments" / "music"


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tiny SRNN run trained on one song file, and a second file with other test songs."""
    own, other = tmp_path / "own.json", tmp_path / "other songs.json"
    own.write_text(json.dumps(songs({"train": [12] * 8, "valid": [10] * 2, "test": [11, 6]}, 40)))
    other.write_text(json.dumps(songs({"train": [9] * 3, "valid": [8], "test": [7, 9, 5]}, 60)))
    run = tmp_path / "run"
    assert main(["train", str(MUSIC / "jsb_srnn_avf_k1.toml"), "--run-dir", str(run),
                 *tiny_music_args(own)]) == 0
    return run, own, other


def test_scores_the_other_sets_test_songs_and_keeps_the_runs_own_score(trained, capsys) -> None:
    run, own, other = trained
    assert main(["evaluate", str(run)]) == 0
    own_report = (run / "eval_test.json").read_bytes()
    assert json.loads(own_report)["dataset"] == str(own)
    assert json.loads(own_report)["steps"] == 11 + 6
    capsys.readouterr()

    assert main(["evaluate", str(run), "--dataset", str(other)]) == 0
    printed = capsys.readouterr().out
    written = run / "eval_test_on_other-songs.json"
    assert f"wrote {written}" in printed and f"test split of {other}: 3 sequences" in printed
    report = json.loads(written.read_text())
    assert report["dataset"] == str(other)
    assert (report["sequences"], report["steps"]) == (3, 7 + 9 + 5)  # the other file's songs
    assert (run / "eval_test.json").read_bytes() == own_report  # `avf runs` reads this one

    # the same number from Python: the run's model on the other set's test split
    loaded = avf.load_run(run)
    data = loaded.data("test", dataset=str(other))
    assert data.x.shape[0] == 3 and int(data.mask.sum()) == 21
    torch.manual_seed(loaded.config.seed)
    batches = data.batches(loaded.config.training.batch_size)  # as `avf evaluate` batches
    score = evaluate(loaded.model, loaded.inference, batches)
    assert score.free_energy == pytest.approx(report["free_energy"], rel=1e-5)


def test_naming_the_runs_own_set_writes_the_usual_report(trained) -> None:
    run, own, _ = trained
    assert main(["evaluate", str(run), "--dataset", str(own)]) == 0
    assert (run / "eval_test.json").is_file()
    assert not list(run.glob("eval_test_on_*.json"))


def test_a_missing_file_is_one_clear_error(trained, capsys) -> None:
    run, _, other = trained
    assert main(["evaluate", str(run), "--dataset", str(other.with_name("nope.json"))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avf: error:") and "nope.json" in err
    assert not list(run.glob("eval_*.json"))


@pytest.mark.parametrize(("source", "why"), [("speech", "standardised"),
                                              ("synthetic", "names no data set")])
def test_sources_that_cannot_be_swapped_are_refused(source: str, why: str) -> None:
    data = {"source": source} | ({"dataset": "fsdd"} if source == "speech" else {})
    cfg = from_dict({"data": data})
    with pytest.raises(ValueError, match=f"not for source = '{source}'.*{why}"):
        with_dataset(cfg, "jsb")


def test_with_dataset_changes_only_the_data_set() -> None:
    cfg = from_dict({"data": {"source": "music", "dataset": "jsb", "crop": 10, "seed": 7}})
    swapped = with_dataset(cfg, "nottingham")
    assert swapped.data.dataset == "nottingham" and cfg.data.dataset == "jsb"
    assert (swapped.data.crop, swapped.data.seed) == (10, 7)
    assert swapped.model == cfg.model and swapped.training == cfg.training
    with pytest.raises(ValueError, match="a name or a path"):
        with_dataset(cfg, "  ")


def test_dataset_labels_are_safe_file_name_parts() -> None:
    assert dataset_label("nottingham") == "nottingham"
    assert dataset_label("../data/polyphonic/JSB_Chorales.mat") == "JSB_Chorales"
    assert dataset_label("my songs (2024).json") == "my-songs-2024"
    assert dataset_label("///") == "data"


def test_plot_draws_the_other_sets_songs_beside_the_runs_own_pictures(trained, capsys) -> None:
    pytest.importorskip("matplotlib")
    run, _, other = trained
    assert main(["plot", str(run), "--dataset", str(other), "--song", "2",
                 "--sequences", "2"]) == 0
    folder = run / "plots_on_other-songs"
    printed = capsys.readouterr().out
    for name in ("learning_curves.png", "iterations.png", "piano_roll.png"):
        assert f"wrote {folder / name}" in printed
    assert not (run / "plots").exists()  # the run's own pictures are not overwritten

    assert main(["plot", str(run), "--dataset", str(other), "--song", "3"]) == 2
    assert f"--song 3 is not in the test split of {other} (0 to 2)" in capsys.readouterr().err

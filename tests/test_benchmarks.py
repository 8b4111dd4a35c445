"""Benchmark scripts stay runnable: tiny smoke runs that write their JSON."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_inference_gap_trains_scores_and_reports(tmp_path):
    common = ["--out", str(tmp_path / "out"), "--json", str(tmp_path / "gap.json")]
    run("inference_gap.py", "--methods", "prior,avf_k1", "--epochs", "1",
        "--train-sequences", "32", "--test-sequences", "4", "--eval-repeats", "1",
        "--hidden", "16", "--no-progress", *common)
    table = run("inference_gap.py", "--report", *common)
    assert "avf_k1" in table and "analytic filtering optimum" in table
    rows = json.loads((tmp_path / "gap.json").read_text())
    assert [r["method"] for r in rows] == ["prior", "avf_k1"]
    assert all(r["gap_to_optimum"] == r["free_energy"] - r["optimum"] for r in rows)
    assert len(rows[1]["trace"]) == 2  # F at the prior, then after the one AVF update


def test_speed_benchmark_writes_rows(tmp_path):
    out = tmp_path / "speed.json"
    run("speed.py", "--data-dir", str(tmp_path / "nothing"), "--models", "dmm",
        "--repeats", "1", "--threads", "1", "--avf-hidden", "32", "--avf-encoding", "layernorm",
        "--avf-x-input", "--avf-grad-samples", "3", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["meta"]["avf_encoding"] == "layernorm"
    assert (result["meta"]["avf_x_input"], result["meta"]["avf_grad_samples"]) == (True, 3)
    assert result["meta"]["data"] == "random binary rolls"
    rows = result["rows"]
    assert [r["inference"] for r in rows] == ["baseline", "avf_k1", "avf_k5"]
    # four more gradient evaluations and network passes per step: more arithmetic, counted
    assert rows[0]["flops_relative_to_baseline"] == 1.0
    assert 0 < rows[1]["train_gflop_per_step"] < rows[2]["train_gflop_per_step"]
    assert rows[0]["avf_network_gflop_per_step"] is None
    assert 0 < rows[1]["avf_network_gflop_per_step"] < rows[1]["train_gflop_per_step"]
    # at the width of the DMM's own transition layers the network's share cannot be told apart
    run("speed.py", "--data-dir", str(tmp_path / "nothing"), "--models", "dmm", "--repeats", "1",
        "--rounds", "2", "--threads", "1", "--avf-hidden", "200", "--json", str(out))
    result = json.loads(out.read_text())
    assert [r["avf_network_gflop_per_step"] for r in result["rows"]] == [None, None, None]
    assert result["meta"]["rounds"] == 2


def speed_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    return speed


def test_flop_count_of_a_linear_layer_is_exact():
    """Forward: 2·B·I·O multiply-adds counted as FLOPs; backward adds the weight's gradient (the
    input needs none), and nothing elementwise is counted."""
    speed = speed_module()
    layer = torch.nn.Linear(10, 20)
    x = torch.randn(5, 10)
    with speed.MatmulFlops() as forward_only:
        torch.relu(layer(x))
    assert forward_only.total == 2 * 5 * 10 * 20
    with speed.MatmulFlops() as both:
        layer(x).sum().backward()
    assert both.total == 2 * (2 * 5 * 10 * 20)
    assert speed.width_share(both, 20) == both.total  # every multiply has the 20 outputs
    assert speed.width_share(both, 7) == 0



def test_flop_count_sees_the_fused_lstm_and_counts_it_exactly():
    """A fused LSTM (SRNN's x-only recurrence) is invisible to the counter: it must say so, and
    with the fused kernels off count exactly the LSTM's matrix multiplies: forward
    F = 2·T·B·4H·(I + H); backward 2F less the input's gradient (x needs none, 2·T·B·4H·I) and
    less the first step's hidden gradient (h_0 is a constant, 2·B·4H·H)."""
    from avf import PriorOnly
    from avf.models import SRNN

    speed = speed_module()
    T, B, In, H = 6, 3, 5, 7
    lstm = torch.nn.LSTM(In, H, batch_first=True)
    x = torch.randn(B, T, In)
    with speed.MatmulFlops() as fused:
        lstm(x)[0].sum().backward()
    assert fused.total == 0 and fused.uncounted
    # CUDA's fused cell kernels are only the gates' elementwise part: not a missed recurrence
    assert not speed.is_fused_recurrence("_thnn_fused_lstm_cell")
    assert not speed.is_fused_recurrence("_thnn_fused_gru_cell_backward")
    assert all(map(speed.is_fused_recurrence, ["mkldnn_rnn_layer", "_cudnn_rnn", "miopen_rnn"]))
    with speed.visible_kernels(), speed.MatmulFlops() as visible:
        lstm(x)[0].sum().backward()
    forward = 2 * T * B * 4 * H * (In + H)
    assert visible.total == 3 * forward - 2 * T * B * 4 * H * In - 2 * B * 4 * H * H
    assert not visible.uncounted

    torch.manual_seed(0)
    model = SRNN(x_dim=In, rnn_dim=H, latent_dim=2, hidden=4, prior_layers=1, decoder_layers=1)
    rolls = torch.randint(0, 2, (B, T, In)).float()
    with speed.MatmulFlops() as plain:
        speed.backward(speed.filter_sequences(model, PriorOnly(), rolls), model, PriorOnly())
    model.zero_grad(set_to_none=True)
    assert plain.uncounted  # the plain count would miss SRNN's recurrence
    assert speed.count_training_flops(model, PriorOnly(), rolls).total > plain.total + forward


def test_speed_procedures_count_what_x_t_and_more_gradient_samples_add():
    """x_t widens the network's first layer; each extra posterior sample evaluates the
    likelihood and its gradient again: both add arithmetic to AVF's rows, none to the
    baseline's."""
    from avf.models import SRNN

    speed = speed_module()
    torch.manual_seed(0)
    model = SRNN(x_dim=5, rnn_dim=7, latent_dim=2, hidden=4, prior_layers=1, decoder_layers=1)
    rolls = torch.randint(0, 2, (3, 6, 5)).float()

    def flops(**options) -> list[int]:
        return [speed.count_training_flops(model, inference, rolls).total
                for inference in speed.procedures(model, 8, **options).values()]

    plain, with_x, sampled = flops(), flops(x_dim=5), flops(grad_samples=4)
    assert plain[0] == with_x[0] == sampled[0]  # the baseline encoder
    for k in (1, 2):  # AVF K=1 and K=5
        assert plain[k] < with_x[k] and plain[k] < sampled[k]


TINY = ('[model.options]\nlatent_dim = 2\nobs_dim = 2\n'
        '[inference.options]\niterations = 1\nhidden = 8\nlayers = 1\n'
        '[data]\ntrain_sequences = 4\nvalid_sequences = 2\ntest_sequences = 2\n'
        'steps = 3\n[training]\nepochs = 1\nbatch_size = 2\nprogress = false\n')


def trained_run(tmp_path):
    from avf.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    run_dir = tmp_path / "runs" / "tiny"
    assert main(["train", str(config), "--run-dir", str(run_dir)]) == 0
    assert main(["evaluate", str(run_dir)]) == 0
    return config, run_dir


def test_gradient_inputs_times_both_ways_and_finds_the_same_gradient(tmp_path):
    out = tmp_path / "gi.json"
    table = run("gradient_inputs.py", "--rounds", "1", "--calls", "2", "--hidden", "16",
                "--batch", "4", "--json", str(out))
    assert "closed form" in table
    rows = json.loads(out.read_text())["rows"]
    assert [(r["path"], r["samples"]) for r in rows] == [
        ("evaluation", 1), ("evaluation", 8), ("training", 1), ("training", 8)]
    for r in rows:
        assert r["autograd_us"] > 0 and r["closed_form_us"] > 0
        assert 0 < r["max_abs_difference"] < 1e-5  # the KL's gradient is not zero there


def test_runs_table_collects_a_trained_run(tmp_path):
    _, run_dir = trained_run(tmp_path)
    out = tmp_path / "rows.json"
    table = run("runs_table.py", str(run_dir), "--out", str(out))
    assert "| tiny | lgssm | iterative K=1 | 1 (1) |" in table
    (row,) = json.loads(out.read_text())["rows"]
    report = json.loads((run_dir / "eval_test.json").read_text())
    assert row["test_free_energy"] == report["free_energy"] and row["test_steps"] == 6
    assert row["encoding"] == "signlog"  # the iterative model's default, named in the row


def test_runs_table_per_seed_rows_name_the_cuts_and_best_validation(tmp_path):
    _, run_dir = trained_run(tmp_path)
    history = [{"epoch": 1, "valid_free_energy": 5.25, "wall_time": 60.0},
               {"epoch": 2, "valid_free_energy": 5.5, "lr_cut": True, "wall_time": 120.0},
               {"epoch": 3, "valid_free_energy": 5.125, "wall_time": 180.0}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    report = json.loads((run_dir / "eval_test.json").read_text())
    table = run("runs_table.py", str(run_dir), "--seeds")
    assert (f"| 0 | AVF K=1 | 3 (1) | 2 | 3.0 min | {report['free_energy']:.4f} | "
            f"{report['macro_free_energy']:.4f} | {report['recon']:.4f} | "
            f"{report['kl']:.4f} | 5.125 |") in table
    history[0].update(lr_cut=True, divergence="epoch 1, batch 2: non-finite gradient")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    assert "| 3 (1) | 1 (diverged), 2 | 3.0 min |" in run("runs_table.py", str(run_dir), "--seeds")


def test_replay_stopping_finds_the_earlier_stop_of_min_improvement(tmp_path):
    run_dir = tmp_path / "creep"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(TINY + "patience = 3\nplateau_patience = 2\n"
                                         "plateau_max_cuts = 1\n")
    scores = [5.0, 4.0, 4.1, 4.2, 3.9999, 3.9998, 3.9997, 3.9996, 3.9995, 3.9994]
    history = [{"epoch": i + 1, "valid_free_energy": v, "wall_time": 60.0 * (i + 1)}
               for i, v in enumerate(scores)]
    history[3]["lr_cut"] = True  # two validations without a new best: the one cut
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    out = tmp_path / "replay.json"
    run("replay_stopping.py", str(run_dir), "--min-improvement", "0", "--out", str(out))
    [same] = json.loads(out.read_text())["rows"]
    assert same["replay_stop_epoch"] is None and not same["recorded_end_by_rule"]  # creeps on
    table = run("replay_stopping.py", str(run_dir), "--min-improvement", "1e-3",
                "--out", str(out))
    # three validations after 4.0 without beating it by 1e-3: patience ends the run at epoch 5
    assert "| creep | 10 (no) | 10.0 min | 3.9994 | 5 | 5.0 min | 3.9999 | 0.0005 |" in table
    [row] = json.loads(out.read_text())["rows"]
    assert row["forfeited_valid"] == pytest.approx(5e-4)
    (run_dir / "config.toml").write_text(TINY + "plateau_patience = 2\nplateau_max_cuts = 1\n")
    run("replay_stopping.py", str(run_dir), "--min-improvement", "1e-3", "--out", str(out))
    [row] = json.loads(out.read_text())["rows"]  # no patience: the plateau after the one cut
    assert (row["replay_stop_epoch"], row["recorded_end_epoch"]) == (6, 10)
    run("replay_stopping.py", str(run_dir), "--final-min-improvement", "1e-3", "--out", str(out))
    [row] = json.loads(out.read_text())["rows"]  # the same: the creep is all after the cut
    assert (row["replay_stop_epoch"], row["final_min_improvement"]) == (6, 1e-3)
    history[2]["lr_cut"] = True  # a cut the run's own rules would not have made
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "replay_stopping.py"),
                           str(run_dir), "--min-improvement", "0"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode != 0 and "first at epoch 3" in done.stderr


def test_replay_stopping_ends_at_a_cut_without_gain_and_lists_the_stages(tmp_path):
    run_dir = tmp_path / "stages"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(TINY + "plateau_patience = 2\nplateau_max_cuts = 3\n")
    scores = [5.0, 4.0, 4.1, 4.2, 3.5, 3.6, 3.7, 3.6, 3.6, 3.4, 3.5, 3.5]
    history = [{"epoch": i + 1, "valid_free_energy": v, "wall_time": 60.0 * (i + 1)}
               for i, v in enumerate(scores)]
    for epoch in (4, 7, 9):  # the second cut's stage (epochs 8-9) finds nothing
        history[epoch - 1]["lr_cut"] = True
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    out = tmp_path / "replay.json"
    text = run("replay_stopping.py", str(run_dir), "--plateau-stop-without-gain", "--stages",
               "--out", str(out))
    result = json.loads(out.read_text())
    [row] = result["rows"]
    assert (row["replay_stop_epoch"], row["forfeited_valid"]) == (9, pytest.approx(0.1))
    assert [st["epochs"] for st in row["stages"]] == [4, 3, 2, 3]
    assert [st["gain"] for st in row["stages"]] == [None, pytest.approx(0.5), 0.0,
                                                    pytest.approx(0.1)]
    assert ("| stages | 4 ep, 4.0 min | 3 ep, 3.0 min, −0.5000 | 2 ep, 2.0 min, no new best |"
            in text)
    assert result["summary"]["saved_epochs"] == 3 and result["summary"]["stop_earlier"] == 1
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "replay_stopping.py"),
                           str(run_dir)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "give at least one of" in done.stderr


def test_fixed_model_inference_trains_inference_alone(tmp_path):
    config, run_dir = trained_run(tmp_path)
    out = tmp_path / "fixed.json"
    text = run("fixed_model_inference.py", str(run_dir), str(config), "--epochs", "2",
               "--set", "encoding=layernorm", "--json", str(out))
    assert "valid F with the run's own inference" in text and "epoch 2: valid F" in text
    result = json.loads(out.read_text())
    assert result["options"]["encoding"] == "layernorm" and len(result["epochs"]) == 2
    assert result["prior"] > 0 and result["own_inference"] > 0
    assert result["weights"] == "trained"  # the run kept no weight average to fix


def test_parallel_runs_trains_every_config_to_equal_epochs_and_scores_them(tmp_path):
    configs = []
    for name, model in (("lin_a", "lgssm"), ("lin_b", "lgssm")):
        path = tmp_path / f"{name}.toml"
        path.write_text(f'name = "{name}"\n[model]\nname = "{model}"\n' + TINY)
        configs.append(str(path))
    out_dir = tmp_path / "par"
    table = run("parallel_runs.py", *configs, "--budget-min", "4", "--eval-min", "1",
                "--probe-epochs", "1", "--max-epochs", "3", "--out-dir", str(out_dir))
    assert "| lin_a | cpu | 3 |" in table
    summary = json.loads((out_dir / "summary.json").read_text())
    rows = {r["run"]: r for r in summary["runs"]}
    assert set(rows) == {"lin_a", "lin_b"}
    for row in rows.values():
        assert row["epochs_planned"] == row["epochs"] == 3  # capped by --max-epochs
        assert 1 <= row["scored_epoch"] <= 3  # best.pt: the best validation epoch
        assert isinstance(row["test_free_energy"], float)


def test_gate_usage_reads_the_highway_gate_of_a_trained_run(tmp_path):
    _, run_dir = trained_run(tmp_path)
    out = tmp_path / "gate.json"
    table = run("gate_usage.py", str(run_dir), "--sequences", "2", "--json", str(out))
    assert "| tiny |" in table
    (row,) = json.loads(out.read_text())
    assert 0.0 < row["gate_mean"] < 1.0 and 0.0 < row["gate_log_var"] < 1.0
    assert row["kl"] >= 0.0


def test_free_energy_by_position_splits_the_test_score_by_step(tmp_path):
    _, run_dir = trained_run(tmp_path)
    out = tmp_path / "position.json"
    table = run("free_energy_by_position.py", str(run_dir), "--chunk", "2", "--batch-size", "2",
                "--json", str(out))
    assert "| 0–5 | 6 |" in table
    result = json.loads(out.read_text())
    report = json.loads((run_dir / "eval_test.json").read_text())
    (whole,) = result["whole"]  # 3-step sequences: every step in the first bin
    assert whole["steps"] == report["steps"] == 6
    # the same seed, batches and order give the same samples (summed in float64 here)
    assert whole["free_energy"] == pytest.approx(report["free_energy"], rel=1e-6)
    (pieces,) = result["chunks_of_2"]
    assert pieces["steps"] == 6


def test_fresh_validation_continues_a_run_with_its_old_scores_set_aside(tmp_path):
    from avf.cli import main

    config, run_dir = trained_run(tmp_path)
    dst = tmp_path / "runs" / "continued"
    assert "validation history set aside" in run("fresh_validation.py", str(run_dir), str(dst))
    old = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert main(["train", str(config), "--run-dir", str(dst), "--epochs", "2"]) == 0
    first, second = (json.loads(line) for line in (dst / "metrics.jsonl").read_text().splitlines())
    assert "valid_free_energy" not in first
    assert first["valid_free_energy_before"] == old["valid_free_energy"]
    assert second["epoch"] == 2 and "valid_free_energy" in second
    best = torch.load(dst / "best.pt", weights_only=True)
    assert best["epoch"] == 2 and best["best_valid"] == second["valid_free_energy"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fresh_validation.py"),
                           str(run_dir), str(dst)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "is not empty" in done.stderr


def test_music_key_frequencies_scores_independent_keys_exactly(tmp_path):
    from avf.data.music import KEYS, save_json

    train = torch.zeros(4, KEYS)
    train[:2, 0] = 1  # key 0 on half the time, key 1 a quarter, the other 86 never
    train[0, 1] = 1
    test_song = torch.zeros(2, KEYS)
    test_song[0, 0] = 1
    path = save_json({"train": [train], "valid": [train], "test": [test_song]},
                     tmp_path / "songs.json")
    out = tmp_path / "floor.json"
    table = run("music_key_frequencies.py", "--sets", str(path), "--json", str(out))
    assert "| 1 | 2 |" in table
    row = json.loads(out.read_text())["rows"][0]
    # key 0: on once and off once at f = 1/2; key 1 off at f = 1/4; 86 keys off at the clip 1e-4
    expected = -math.log(0.5) - math.log(0.75) - 86 * math.log(1 - 1e-4)
    assert row["micro"] == pytest.approx(expected, rel=1e-9)
    assert row["macro"] == pytest.approx(expected, rel=1e-9)
    assert row["keys_never_on_in_training"] == 86


@pytest.mark.parametrize("model", [
    'name = "dmm"\n[model.options]\nx_dim = 6\nlatent_dim = 3\ntransition_dim = 8\n'
    'emission_dim = 8\n',  # the state is z itself
    'name = "srnn"\n[model.options]\nx_dim = 6\nlatent_dim = 3\nrnn_dim = 8\n'
    'hidden = 8\n'])  # the state is a dict that holds z
def test_latent_scale_trace_writes_one_record_per_training_batch(tmp_path, model):
    config = tmp_path / "trace.toml"
    config.write_text(
        'name = "trace"\n[model]\n' + model + '[inference]\nname = "iterative"\n'
        '[inference.options]\nhidden = 16\nencoding = "layernorm"\n[data]\nsource = "synthetic"\n'
        'train_sequences = 20\nvalid_sequences = 4\ntest_sequences = 4\nsteps = 5\n'
        '[training]\nepochs = 2\nbatch_size = 8\nprogress = false\n')
    out = tmp_path / "trace.jsonl"
    printed = run("latent_scale_trace.py", "--out", str(out), "--every", "1", "--",
                  str(config), "--run-dir", str(tmp_path / "run"))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["batch"] for r in records] == [1, 2, 3, 4, 5, 6]  # 3 batches of 20 × 2 epochs
    first = records[0]
    assert first["max_abs_z"] > 0 and "max_abs_z" in printed
    assert first["prior_log_var_min"] <= first["prior_log_var_max"]
    assert first["posterior_log_var_min"] <= first["posterior_log_var_max"]
    assert math.isfinite(first["max_mean_shift_in_prior_sigmas"])
    assert first["grad_norm_model"] > 0 and first["grad_norm_inference"] > 0


def test_seed_summary_means_and_paired_differences(tmp_path):
    results = tmp_path / "results"
    results.mkdir()

    def rows(*runs):
        return {"machine": "test", "rows": [
            {"run": name, "test_free_energy": micro, "test_macro_free_energy": macro}
            for name, micro, macro in runs]}

    (results / "a.json").write_text(json.dumps(rows(("b0", 7.0, 6.0), ("b1", 7.4, 6.2),
                                                    ("m0", 6.9, 6.1))))
    (results / "b.json").write_text(json.dumps(rows(("m1", 7.0, 6.3), ("b0", 7.0, 6.0))))
    (results / "other.json").write_text(json.dumps([1, 2]))  # not a runs table: skipped
    spec = tmp_path / "spec.toml"
    spec.write_text('reference = "base"\n[[set]]\nname = "S"\nbase = ["b0", "b1"]\n'
                    'mine = ["m0", "m1"]\n')
    out = tmp_path / "summary.json"
    table = run("seed_summary.py", str(spec), "--results", str(results), "--out", str(out))
    assert "| S | mine | 2 | 6.950 ± 0.071 |" in table
    base, mine = json.loads(out.read_text())["records"]
    assert base["micro"]["mean"] == pytest.approx(7.2) and "paired_difference" not in base["micro"]
    diff = mine["micro"]["paired_difference"]  # (6.9 − 7.0, 7.0 − 7.4) = (−0.1, −0.4)
    assert diff["mean"] == pytest.approx(-0.25)
    assert diff["sd"] == pytest.approx(math.sqrt(0.045))
    assert diff["se"] == pytest.approx(0.15)
    assert mine["micro"]["pairs_better"] == 2
    assert mine["macro"]["paired_difference"]["mean"] == pytest.approx(0.1)  # (0.1, 0.1)
    assert mine["macro"]["pairs_better"] == 0

    (results / "c.json").write_text(json.dumps(rows(("m1", 7.5, 6.3))))  # same name, new score
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "seed_summary.py"),
                           str(spec), "--results", str(results)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0 and "different test scores in b.json and c.json" in done.stderr


@pytest.mark.parametrize("spec", sorted((ROOT / "benchmarks" / "seed_sets").glob("*.toml")),
                         ids=lambda p: p.stem)
def test_committed_seed_sets_resolve_against_the_committed_results(spec, tmp_path):
    """Every run a committed seed set names has one test score in benchmarks/results, so the
    means in BENCHMARKS.md can be rebuilt from the repository alone; fewer than three seeds
    only in a set marked partial."""
    out = tmp_path / "summary.json"
    table = run("seed_summary.py", str(spec), "--out", str(out))
    summary = json.loads(out.read_text())
    records = summary["records"]
    assert records
    if "partial" in summary:
        assert f"partial: {summary['partial']}" in table
    else:
        assert all(len(r["runs"]) >= 3 for r in records)


def test_smc_bounds_scores_a_trained_run(tmp_path):
    _, run_dir = trained_run(tmp_path)
    out = tmp_path / "smc.json"
    table = run("smc_bounds.py", str(run_dir), "--particles", "2,64", "--out", str(out))
    assert "| tiny | 1 |" in table and "SMC 64" in table
    [row] = json.loads(out.read_text())["rows"]
    report = json.loads((run_dir / "eval_test.json").read_text())
    assert row["free_energy"] == pytest.approx(report["free_energy"])  # as avf evaluate scores
    few, many = row["smc"]
    assert (few["particles"], many["particles"]) == (2, 64) and few["steps"] == row["steps"] == 6
    assert many["nll"] < row["free_energy"]  # the particle filter tightens the bound


def test_eval_noise_scores_a_run_under_several_sample_seeds(tmp_path):
    _, run_dir = trained_run(tmp_path)
    out = tmp_path / "noise.json"
    table = run("eval_noise.py", str(run_dir), "--repeats", "3", "--batch-size", "2",
                "--out", str(out))
    assert "| tiny | 1 | 1 |" in table
    [row] = json.loads(out.read_text())["rows"]
    assert len(row["micro"]) == 3 and len(set(row["micro"])) == 3  # three different samples
    assert row["micro_sd"] > 0 and row["steps"] == 6


def test_eval_noise_scores_the_validation_split_when_asked(tmp_path):
    _, run_dir = trained_run(tmp_path)
    scores = {}
    for split in ("test", "valid"):
        out = tmp_path / f"noise_{split}.json"
        run("eval_noise.py", str(run_dir), "--repeats", "2", "--batch-size", "2",
            "--split", split, "--out", str(out))
        [row] = json.loads(out.read_text())["rows"]
        assert row["split"] == split
        scores[split] = row["micro"]
    # the same sample seeds on other sequences: other scores
    assert all(a != b for a, b in zip(scores["test"], scores["valid"], strict=True))


def test_cross_dataset_scores_runs_on_another_set_and_pairs_the_methods_by_seed(tmp_path):
    from avf.cli import main
    from conftest import climbing_songs, tiny_music_args

    own, other = tmp_path / "own.json", tmp_path / "other.json"
    own.write_text(json.dumps(climbing_songs({"train": [12] * 8, "valid": [10] * 2,
                                              "test": [11, 6]}, 40)))
    other.write_text(json.dumps(climbing_songs({"train": [9] * 3, "valid": [8],
                                                "test": [7, 9, 5]}, 60)))
    music = ROOT / "experiments" / "music"
    runs = []
    for config in ("jsb_srnn_baseline", "jsb_srnn_avf_k1"):
        for seed in (0, 1):
            run_dir = tmp_path / f"{config}_seed{seed}"
            assert main(["train", str(music / f"{config}.toml"), "--run-dir", str(run_dir),
                         "--seed", str(seed), *tiny_music_args(own)]) == 0
            assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
            runs.append(str(run_dir))
    out = tmp_path / "cross.json"
    table = run("cross_dataset.py", *runs, "--datasets", str(other), "--out", str(out))
    written = json.loads(out.read_text())
    rows = written["rows"]
    assert [(r["dataset"], r["steps"]) for r in rows[:2]] == [(str(own), 17), (str(other), 21)]
    for r in rows:  # every number is the report avf evaluate wrote
        name = "eval_test.json" if r["dataset"] == str(own) else "eval_test_on_other.json"
        report = json.loads((tmp_path / r["run"] / name).read_text())
        assert r["free_energy"] == report["free_energy"] and r["epoch"] == report["epoch"]
    avf_on_other = next(s for s in written["summary"]
                        if s["set"] == str(other) and s["method"] != "baseline encoder")
    by = {(r["method"], r["seed"]): r["free_energy"] for r in rows if r["dataset"] == str(other)}
    differences = [by[("AVF K=1", s)] - by[("baseline encoder", s)] for s in (0, 1)]
    paired = avf_on_other["micro"]["paired_difference"]
    assert paired["mean"] == pytest.approx(sum(differences) / 2)
    assert avf_on_other["micro"]["pairs"] == 2
    assert f"| {other} | AVF K=1 | 2 |" in table
    assert "s)" not in run("cross_dataset.py", *runs, "--datasets", str(other))  # reused


def test_music_overlap_finds_a_test_song_that_is_also_in_training(tmp_path):
    from conftest import climbing_songs

    songs = climbing_songs({"train": [12, 12], "valid": [5], "test": [12, 6]}, 40)
    songs["test"][1] = [[k + 20 for k in step] for step in songs["test"][1]]  # not in train
    path = tmp_path / "set.json"
    path.write_text(json.dumps(songs))
    out = tmp_path / "overlap.json"
    printed = run("music_overlap.py", str(path), "--train", str(path), "--steps", "4",
                  "--min-notes", "2", "--out", str(out))
    (row,) = json.loads(out.read_text())["rows"]
    # test song 0 is train song 0: its 9 windows are all found; song 1 sits 20 keys higher
    assert (row["found"], row["windows"], row["songs_with_any"]) == (9, 12, 1)
    assert "9 of 12 windows, in 1 of 2 test songs" in printed
    again = run("music_overlap.py", str(path), "--train", str(path), "--steps", "4",
                "--min-notes", "2", "--transposed", "--out", str(out))
    (row,) = json.loads(out.read_text())["rows"]
    assert row["found"] == row["windows"] and "in 2 of 2 test songs" in again  # any key


def test_gradient_noise_falls_with_samples_and_antithetic_pairs_are_exact_when_linear(tmp_path):
    _, run_dir = trained_run(tmp_path)  # linear-Gaussian: ∇_mean F_t is linear in z
    out = tmp_path / "noise.json"
    table = run("gradient_noise.py", str(run_dir), "--sequences", "2", "--every", "1",
                "--reference-samples", "4096", "--repeats", "64",
                "--estimators", "iid:1,iid:8,antithetic:2", "--json", str(out))
    assert "| tiny | antithetic | 2 |" in table
    (result,) = json.loads(out.read_text())
    assert result["steps"] == 3
    err = {(r["estimator"], r["samples"]): r for r in result["rows"]}
    # independent samples: the error falls as 1/S (8× here, within the noise of 64 repeats)
    ratio = err["iid", 1]["relative_error_all"] / err["iid", 8]["relative_error_all"]
    assert 4 < ratio < 16
    # a pair (ε, −ε) gets the mean's gradient exactly; what is left is the reference's own noise
    assert err["antithetic", 2]["relative_error_mean"] < 0.01 * err["iid", 1]["relative_error_mean"]
    assert err["antithetic", 2]["relative_error_log_var"] > 0  # the variance's is quadratic in z

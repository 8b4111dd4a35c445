"""Benchmark scripts stay runnable: tiny smoke runs that write their JSON."""

import json
import subprocess
import sys
from pathlib import Path

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
        "--repeats", "1", "--threads", "1", "--avf-hidden", "32", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["meta"]["data"] == "random binary rolls"
    assert [r["inference"] for r in result["rows"]] == ["baseline", "avf_k1", "avf_k5"]

"""The README must not lie: its example runs, and its test command is what CI calls."""

import json
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["own_model.py", "own_inference.py", "train_with_callback.py"])
def test_readme_examples_are_the_example_files_and_run(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    example = (ROOT / "examples" / name).read_text()
    assert example in blocks
    namespace: dict = {"__name__": "__main__"}
    exec(compile(example, f"README example {name}", "exec"), namespace)
    assert "model" in namespace


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
    assert "torch==2.13.0" in ci


def test_the_own_model_config_trains_the_readme_model(tmp_path, monkeypatch) -> None:
    from avf.cli import main

    monkeypatch.chdir(tmp_path)  # the model file is found beside the config, not from here
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "examples" / "own_model.toml"), "--run-dir", str(run),
                 "--set", "training.epochs=1", "--set", "data.train_sequences=32"]) == 0
    assert main(["evaluate", str(run), "--no-progress"]) == 0


def test_the_own_inference_config_trains_its_step_size(tmp_path) -> None:
    from avf.cli import main

    run = tmp_path / "run"
    assert main(["train", str(ROOT / "examples" / "own_inference.toml"), "--run-dir", str(run),
                 "--set", "training.epochs=1", "--set", "data.train_sequences=64"]) == 0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    step = ckpt["inference"]["log_step"]
    assert step.shape == (8,) and not torch.allclose(step, torch.full((8,), -2.0))  # φ learnt


def test_the_use_a_run_example_opens_a_trained_run(tmp_path, monkeypatch, capsys) -> None:
    from avf.cli import main

    example = (ROOT / "examples" / "use_a_run.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert example in blocks
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "examples" / "own_model.toml"), "--run-dir", str(run),
                 "--set", "training.epochs=1", "--set", "data.train_sequences=32"]) == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.argv", ["use_a_run.py", str(run)])
    exec(compile(example, "use_a_run.py", "exec"), {"__name__": "__main__"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("own_model, epoch 1: ") and len(lines) == 5
    assert lines[-1].endswith("x (1, 10, 5, 3)")


def _command_line_block() -> list[str]:
    """The README's command-line synopsis, one string per command (continuation lines joined,
    comments dropped)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    for line in block.splitlines():
        text = line.split("  #", 1)[0].rstrip()
        if text.startswith("avf "):
            commands.append(text)
        elif text.strip():
            commands[-1] += " " + text.strip()
    return commands


def _help_of(command: str, capsys) -> str:
    """Every help text of an ``avf`` command: its parser's, and its actions' (``avf data``)."""
    from avf.cli import _parser
    from avf.demo import main as demo_main

    if command == "demo":  # the demo parses its own options
        with pytest.raises(SystemExit):
            demo_main(["--help"])
        return capsys.readouterr().out
    sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
    actions = [a for a in sub._actions if a.dest == "data_command"]
    return sub.format_help() + "".join(p.format_help() for a in actions
                                       for p in a.choices.values())


def test_the_command_line_synopsis_names_every_command_and_only_real_options(capsys) -> None:
    from avf.cli import _parser

    commands = _command_line_block()
    named = {c.split()[1] for c in commands if not c.split()[1].startswith("-")}
    every = set(next(a for a in _parser()._actions if a.dest == "command").choices)
    assert named == every, f"commands missing from the README: {every - named}"
    for command in commands:
        name = command.split()[1]
        if name.startswith("-"):
            continue
        known = _help_of(name, capsys)
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", command):
            assert re.search(rf"(?<![\w-]){option}\b", known), \
                f"README: `avf {name}` has no option {option}"


# README's results table, cell by cell: (summary JSON in benchmarks/results, set, method), None
# for "–". Each cell must print that record's micro mean ± sd, and say so when it has fewer
# than five seeds (_FEWER_SEEDS).
_FEWER_SEEDS = {1: " (one seed)", 2: " (two seeds)", 3: " (three seeds)", 4: " (four seeds)"}
_RESULT_CELLS = {
    "avf, baseline encoder": [("music_shipped", set_, "baseline encoder")
                              for set_ in ("Piano-midi", "MuseData", "JSB", "Nottingham")],
    "avf, AVF K=1 + x_t": [("music_shipped", set_, "AVF K=1 + x_t, layernorm")
                           for set_ in ("Piano-midi", "MuseData", "JSB", "Nottingham")],
    "avf, AVF K=5 + x_t": [None, None, ("jsb_k5_shipped", "JSB", "AVF K=5 + x_t"), None],
    "avf, model-agnostic AVF K=1": [
        (f"{name}_antithetic", set_, "AVF K=1, gradient only, 8 antithetic samples")
        for name, set_ in (("piano", "Piano-midi"), ("musedata", "MuseData"), ("jsb", "JSB"),
                           ("nottingham", "Nottingham"))
    ],
}


def _results_table() -> dict[str, list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Results: the paper's polyphonic-music table", 1)[1].split("\n## ")[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| avf")]
    return {cells[0].strip(): [c.strip().replace("**", "") for c in cells[1:]] for cells in rows}


def test_the_readme_results_are_the_committed_seed_summaries() -> None:
    table = _results_table()
    assert len(table) == len(_RESULT_CELLS)
    for label, expected in _RESULT_CELLS.items():
        [row] = [cells for name, cells in table.items() if name.startswith(label)]
        for cell, source in zip(row, expected, strict=True):
            if source is None:
                assert cell == "–"
                continue
            name, set_, method = source
            summary = json.loads((ROOT / "benchmarks" / "results" / f"{name}_summary.json")
                                 .read_text())
            [record] = [r for r in summary["records"]
                        if r["set"].startswith(set_) and r["method"] == method]
            micro = record["micro"]
            shown = (f"{micro['mean']:.3f}" + (f" ± {micro['sd']:.3f}" if micro["n"] > 1 else "")
                     + _FEWER_SEEDS.get(micro["n"], ""))
            assert cell == shown, (label, set_)

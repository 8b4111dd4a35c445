"""Speech loaders on tiny files written here (WAV, FLAC, NIST SPHERE, fake FSDD and TIMIT trees):
exact samples and frames, split rules, train-only standardisation, clear errors, and (when the
team's shared data folder is there) the real FSDD's counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")

from avf.data.audio import (  # noqa: E402 - after the importorskip above
    SPLITS,
    AudioData,
    Standardizer,
    audio_splits,
    frame_waveform,
    load_fsdd,
    load_timit,
    load_wav_directory,
    read_audio,
)

SHARED_FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech" / "fsdd"


def pcm(n: int, seed: int = 0) -> np.ndarray:
    """n random int16 samples, the extremes included so the scaling is checked at both ends."""
    x = np.random.default_rng(seed).integers(-32768, 32768, n).astype(np.int16)
    x[:2] = (-32768, 32767)
    return x


def write(path: Path, samples: np.ndarray, rate: int = 8000, **kwargs: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype="PCM_16", **kwargs)
    return path


# -- reading and framing ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["wav", "flac", "nist"])
def test_read_audio_is_int16_over_32768(tmp_path: Path, kind: str) -> None:
    samples = pcm(300)
    extra = {"format": "NIST"} if kind == "nist" else {}
    path = write(tmp_path / f"a.{'WAV' if kind == 'nist' else kind}", samples, 16000, **extra)
    if kind == "nist":
        assert path.read_bytes()[:4] == b"NIST"
    wave, rate = read_audio(path)
    assert rate == 16000 and wave.dtype == np.float64 and wave.shape == (300,)
    np.testing.assert_array_equal(wave, samples / 32768.0)
    assert wave.min() == -1.0 and wave.max() < 1.0


def test_read_audio_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        read_audio(tmp_path / "nope.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(ValueError, match=r"junk\.wav: not a readable audio file"):
        read_audio(tmp_path / "junk.wav")
    write(tmp_path / "stereo.wav", np.zeros((10, 2), np.int16))
    with pytest.raises(ValueError, match="2 channels; only mono"):
        read_audio(tmp_path / "stereo.wav")
    write(tmp_path / "empty.wav", np.zeros(0, np.int16))
    with pytest.raises(ValueError, match=r"empty\.wav: holds no samples"):
        read_audio(tmp_path / "empty.wav")


def test_frame_waveform_is_exact() -> None:
    wave = np.arange(1050, dtype=np.float64)
    frames = frame_waveform(wave, 200)
    assert frames.shape == (5, 200) and frames.dtype == torch.float32
    assert torch.equal(frames.flatten(), torch.arange(1000, dtype=torch.float32))  # 50 dropped
    assert torch.equal(frame_waveform(torch.arange(6.0), 3), torch.tensor([[0., 1, 2], [3, 4, 5]]))
    assert frame_waveform(wave, 1050).shape == (1, 1050)
    with pytest.raises(ValueError, match="1049 samples, fewer than one frame of 1050"):
        frame_waveform(wave[:1049], 1050)
    with pytest.raises(ValueError, match="frame_size must be a positive integer"):
        frame_waveform(wave, 0)
    with pytest.raises(ValueError, match="1-D"):
        frame_waveform(wave.reshape(2, -1))


# -- standardisation --------------------------------------------------------------------------
def test_standardizer_fit_apply_invert() -> None:
    waves = [np.array([0.0, 0.5, 1.0]), torch.tensor([2.0, -1.0])]
    scale = Standardizer.fit(waves)
    every = np.array([0.0, 0.5, 1.0, 2.0, -1.0])
    assert scale.mean == pytest.approx(every.mean(), abs=1e-15)
    assert scale.std == pytest.approx(every.std(), rel=1e-14)
    x = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(scale.apply(x), (x - every.mean()) / every.std(), rtol=1e-14)
    np.testing.assert_allclose(scale.invert(scale.apply(x)), x, atol=1e-15)
    assert torch.allclose(scale.invert(scale.apply(torch.tensor(x))), torch.tensor(x))
    assert scale.step() == pytest.approx(1 / 32768 / every.std(), rel=1e-14)
    again = Standardizer.from_dict(json.loads(json.dumps(scale.to_dict())))
    assert again == scale and isinstance(again.mean, float)
    with pytest.raises(ValueError, match="constant"):
        Standardizer.fit([np.ones(4)])
    with pytest.raises(ValueError, match="no samples"):
        Standardizer.fit([])
    with pytest.raises(ValueError, match="positive std"):
        Standardizer(0.0, 0.0)


def make_data(train: list[np.ndarray], valid: list[np.ndarray], test: list[np.ndarray]
              ) -> AudioData:
    waves = {"train": train, "valid": valid, "test": test}
    names = {s: [f"{s}{i}.wav" for i in range(len(waves[s]))] for s in SPLITS}
    return AudioData(waves, 8000, names)


def test_audio_splits_standardise_with_train_statistics_only() -> None:
    rng = np.random.default_rng(0)
    train = [rng.normal(0.1, 0.2, n).astype(np.float32) for n in (1000, 1300, 900)]
    valid = [rng.normal(-0.5, 0.05, 1000).astype(np.float32)]
    test = [rng.normal(3.0, 1.0, n).astype(np.float32) for n in (450, 250)]
    result = audio_splits(make_data(train, valid, test), frame_size=100)
    every = np.concatenate(train).astype(np.float64)
    assert result.standardizer.mean == pytest.approx(every.mean(), rel=1e-12)
    assert result.standardizer.std == pytest.approx(every.std(), rel=1e-12)
    test_split = result.splits["test"]
    assert test_split.x.shape == (2, 4, 100) and test_split.lengths.tolist() == [4, 2]
    expected = (test[1][:200].astype(np.float64) - every.mean()) / every.std()
    assert torch.allclose(test_split.x[1, :2].flatten(), torch.from_numpy(expected).float())
    assert not test_split.mask[1, 2:].any() and bool((test_split.x[1, 2:] == 0).all())
    assert result.splits["train"].lengths.tolist() == [10, 13, 9]
    given = Standardizer(0.0, 2.0)
    assert audio_splits(make_data(train, valid, test), 100, standardizer=given).standardizer is (
        given)


def test_audio_splits_crops_are_fixed_length_and_deterministic() -> None:
    rng = np.random.default_rng(1)
    train = [rng.normal(size=n).astype(np.float32) for n in (1000, 300, 2000)]
    data = make_data(train, [train[2].copy()], [train[0].copy()])
    a = audio_splits(data, frame_size=100, crop_steps=5, seed=3)
    b = audio_splits(data, frame_size=100, crop_steps=5, seed=3)
    assert a.splits["train"].x.shape == (2, 5, 100)  # the 3-frame utterance is dropped
    assert a.dropped == {"train": 1, "valid": 0}
    assert torch.equal(a.splits["train"].x, b.splits["train"].x)
    assert a.splits["test"].x.shape == (1, 10, 100)  # test stays whole
    whole = a.frames["train"][2]
    crop = a.splits["train"].x[1]
    assert any(torch.equal(crop, whole[s:s + 5]) for s in range(16))
    epoch = [a.crops(5, torch.Generator().manual_seed(7)).x for _ in range(2)]
    assert torch.equal(epoch[0], epoch[1])
    with pytest.raises(ValueError, match=r"train utterance train1\.wav: .*fewer than one frame"):
        audio_splits(data, frame_size=400)
    with pytest.raises(ValueError, match=r"train split \(frames of 100 samples\): no "):
        audio_splits(data, frame_size=100, crop_steps=21)


# -- FSDD -------------------------------------------------------------------------------------
def fake_fsdd(folder: Path, takes: range = range(12)) -> Path:
    recordings = folder / "recordings"
    for speaker in ("anna", "bob"):
        for digit in (3, 7):
            for take in takes:
                write(recordings / f"{digit}_{speaker}_{take}.wav", pcm(450, take))
    (recordings / "README.txt").write_text("not audio, ignored")
    return folder


def test_fsdd_split_rule(tmp_path: Path) -> None:
    data = load_fsdd(fake_fsdd(tmp_path / "fsdd"))
    assert data.sample_rate == 8000
    for split, takes in {"test": range(5), "valid": range(5, 10), "train": (10, 11)}.items():
        found = sorted(n for n in data.names[split])
        assert found == sorted(f"{d}_{s}_{t}.wav" for s in ("anna", "bob") for d in (3, 7)
                               for t in takes)
        assert data.speaker_set(split) == ["anna", "bob"]
        assert all(n.split("_")[1] == s for n, s in zip(data.names[split],
                                                         data.speakers[split], strict=True))
    first = data.names["test"].index("3_anna_0.wav")
    np.testing.assert_array_equal(data.waves["test"][first], pcm(450, 0) / 32768.0)
    assert data.waves["test"][first].dtype == np.float32
    same = load_fsdd(tmp_path / "fsdd" / "recordings")
    assert same.names == data.names


def test_fsdd_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere.*<data-dir>/speech/fsdd/recordings"):
        load_fsdd(tmp_path / "nowhere")
    monkeypatch.setenv("AVF_DATA_DIR", str(tmp_path / "dd"))
    with pytest.raises(FileNotFoundError, match=r"speech/fsdd.*AVF_DATA_DIR"):
        load_fsdd()
    fake_fsdd(tmp_path / "dd" / "speech" / "fsdd", range(11))
    assert len(load_fsdd().names["train"]) == 4  # found through $AVF_DATA_DIR
    recordings = tmp_path / "dd" / "speech" / "fsdd" / "recordings"
    write(recordings / "3_anna_99.wav", pcm(10), rate=16000)
    with pytest.raises(ValueError, match=r"anna_10\.wav is 8000 Hz but .*anna_99\.wav is 16000"):
        load_fsdd()
    (recordings / "3_anna_99.wav").unlink()
    write(recordings / "hello.wav", pcm(10))
    with pytest.raises(ValueError, match=r"1 \.wav file\(s\) not named .* hello\.wav"):
        load_fsdd()


def test_real_fsdd_counts() -> None:
    if not (SHARED_FSDD / "recordings").is_dir():
        pytest.skip(f"the Free Spoken Digit Dataset is not in {SHARED_FSDD}")
    data = load_fsdd(SHARED_FSDD)
    sizes = {s: len(data.waves[s]) for s in SPLITS}
    assert sizes == {"train": 2400, "valid": 300, "test": 300} and sum(sizes.values()) == 3000
    assert data.sample_rate == 8000
    assert all(data.speaker_set(s) == ["george", "jackson", "lucas", "nicolas", "theo",
                                       "yweweler"] for s in SPLITS)
    summary = data.summary()
    assert sum(summary[s]["samples"] for s in SPLITS) == 10_498_424
    assert summary["test"]["min_seconds"] == 1148 / 8000  # the shortest clip, 0.1435 s


# -- a folder of files ------------------------------------------------------------------------
def test_wav_directory_random_split(tmp_path: Path) -> None:
    for i in range(20):
        write(tmp_path / f"part{i % 3}" / f"u{i:02d}.{'flac' if i % 4 else 'WAV'}", pcm(50, i))
    data = load_wav_directory(tmp_path, valid_fraction=0.1, test_fraction=0.15, seed=4)
    assert [len(data.names[s]) for s in SPLITS] == [15, 2, 3]
    every = [n for s in SPLITS for n in data.names[s]]
    assert len(set(every)) == 20 and data.speakers is None
    again = load_wav_directory(tmp_path, valid_fraction=0.1, test_fraction=0.15, seed=4)
    assert again.names == data.names
    other = load_wav_directory(tmp_path, valid_fraction=0.1, test_fraction=0.15, seed=5)
    assert other.names != data.names
    with pytest.raises(ValueError, match="must be in"):
        load_wav_directory(tmp_path, valid_fraction=0.6, test_fraction=0.5)


def test_wav_directory_split_folders(tmp_path: Path) -> None:
    for split, count in (("Train", 6), ("test", 2)):
        for i in range(count):
            write(tmp_path / split / "sub" / f"{i}.wav", pcm(40, i))
    data = load_wav_directory(tmp_path, valid_fraction=0.2)
    assert [len(data.names[s]) for s in SPLITS] == [5, 1, 2]
    assert all(n.startswith("Train/") for n in data.names["valid"])
    write(tmp_path / "valid" / "v.wav", pcm(40))
    data = load_wav_directory(tmp_path)
    assert data.names["valid"] == ["valid/v.wav"] and len(data.names["train"]) == 6
    write(tmp_path / "stray.wav", pcm(40))
    with pytest.raises(ValueError, match=r"1 audio file.* outside train/, valid/, test/"):
        load_wav_directory(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such audio folder"):
        load_wav_directory(tmp_path / "missing")


# -- TIMIT ------------------------------------------------------------------------------------
TRAIN_SPEAKERS = {"DR1": ("FAAA0", "MBBB0", "MCCC0"), "DR2": ("FDDD0", "MEEE0", "MFFF0")}
TEST_SPEAKERS = {"dr1": ("MGGG0",), "dr2": ("FHHH0",)}
UTTERANCES = ("SA1", "SI100", "SX10")


def fake_timit(root: Path) -> Path:
    """TIMIT's layout in SPHERE files; one speaker also has RIFF ``.WAV.wav`` copies (negated,
    to tell them apart) and the test half is in lower case."""
    for split, regions in (("TRAIN", TRAIN_SPEAKERS), ("test", TEST_SPEAKERS)):
        for region, speakers in regions.items():
            for k, speaker in enumerate(speakers):
                for j, utt in enumerate(UTTERANCES):
                    name = utt if split == "TRAIN" else utt.lower()
                    samples = pcm(400 + 100 * j, 10 * k + j)
                    write(root / split / region / speaker / f"{name}.WAV", samples, 16000,
                          format="NIST")
                    if speaker == "MBBB0":
                        write(root / split / region / speaker / f"{name}.WAV.wav", -samples,
                              16000)
                (root / split / region / speaker / f"{utt}.PHN").write_text("0 9 h#\n")
    return root


def test_timit_speaker_split(tmp_path: Path) -> None:
    root = fake_timit(tmp_path / "corpus" / "TIMIT")
    data = load_timit(tmp_path / "corpus", valid_speakers=2, seed=0)
    assert data.sample_rate == 16000
    valid = set(data.speaker_set("valid"))
    train = set(data.speaker_set("train"))
    assert len(valid) == 2 and len(train) == 4 and not valid & train
    assert data.speaker_set("test") == ["DR1/MGGG0", "DR2/FHHH0"]
    assert train | valid == {f"{r}/{s}" for r, ss in TRAIN_SPEAKERS.items() for s in ss}
    assert len(data.names["valid"]) == 6 and len(data.names["test"]) == 6
    assert load_timit(root, valid_speakers=2, seed=0).names == data.names
    seeds = {tuple(load_timit(root, valid_speakers=2, seed=s).speaker_set("valid"))
             for s in range(6)}
    assert len(seeds) > 1
    # the RIFF copy wins over the SPHERE file of the same utterance
    names = [n for s in ("train", "valid") for n in data.names[s] if "MBBB0" in n]
    assert sorted(names) == [f"TRAIN/DR1/MBBB0/{u}.WAV.wav" for u in UTTERANCES]
    split = "train" if "DR1/MBBB0" in train else "valid"
    index = data.names[split].index("TRAIN/DR1/MBBB0/SX10.WAV.wav")
    np.testing.assert_array_equal(data.waves[split][index], -pcm(600, 12) / 32768.0)


def test_timit_options_and_errors(tmp_path: Path) -> None:
    root = fake_timit(tmp_path)
    data = load_timit(root, valid_speakers=0.2, include_sa=False)
    assert len(data.speaker_set("valid")) == 1  # round(0.2 * 6)
    assert not any("SA1" in n.upper() for s in SPLITS for n in data.names[s])
    assert len(data.names["test"]) == 4
    with pytest.raises(ValueError, match="must leave train at least one"):
        load_timit(root, valid_speakers=6)
    with pytest.raises(ValueError, match="fraction must be in"):
        load_timit(root, valid_speakers=1.5)
    with pytest.raises(FileNotFoundError, match="no TRAIN and TEST folders"):
        load_timit(root / "TRAIN")

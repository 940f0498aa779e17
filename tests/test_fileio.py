"""Atomic writes: a failed or killed write leaves the previous output intact (one file, several files, a whole
directory) and nothing complete-looking; reads name the file."""

import os
import stat

import pytest

from regmix_megatron.errors import DataError
from regmix_megatron.fileio import (
    atomic_dir,
    atomic_files,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_yaml,
    set_aside,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert read_json(target) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_write_keeps_previous_content(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_first_write_creates_nothing(tmp_path):
    target = tmp_path / "sub" / "new.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("x")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_read_errors_name_file_and_position(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": }')
    with pytest.raises(DataError, match=r"bad\.json: invalid JSON at line 2"):
        read_json(bad)
    with pytest.raises(DataError, match="file not found"):
        read_yaml(tmp_path / "missing.yaml")


# ---- reads name the file -------------------------------------------------------------------------------
def test_a_directory_a_binary_file_and_a_missing_file_are_named(tmp_path):
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "bin.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(DataError, match=r"dir\.json: is a directory, where a file is expected"):
        read_json(tmp_path / "dir.json")
    with pytest.raises(DataError, match=r"bin\.json: not a text file"):
        read_json(tmp_path / "bin.json")
    with pytest.raises(DataError, match=r"--config .*nope\.yaml: file not found"):
        read_yaml(tmp_path / "nope.yaml", what="--config")


# ---- several files, a whole directory ---------------------------------------------------------------------
def test_atomic_files_renames_all_or_none(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.json"
    a.write_text("old a")
    with pytest.raises(RuntimeError):
        with atomic_files(a, b) as (ta, tb):
            ta.write_text("new a")
            raise RuntimeError("killed between the two files")
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
    with atomic_files(a, b) as (ta, tb):
        ta.write_text("new a")
        tb.write_text("new b")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")


def _write_outputs(out, text, fail=False):
    with atomic_dir(out, owned={"x.txt", "sub"}, what="--output-dir") as tmp:
        (tmp / "x.txt").write_text(text)
        if fail:
            raise RuntimeError("killed mid-write")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "y.txt").write_text(text)


def test_atomic_dir_is_whole_or_absent_and_keeps_the_previous_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        _write_outputs(out, "first", fail=True)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    _write_outputs(out, "first")
    with pytest.raises(RuntimeError):
        _write_outputs(out, "second", fail=True)
    assert (out / "x.txt").read_text() == (out / "sub" / "y.txt").read_text() == "first"
    _write_outputs(out, "second")
    assert (out / "x.txt").read_text() == (out / "sub" / "y.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_at_each_rename_of_the_swap_leaves_old_whole_or_nothing(tmp_path, monkeypatch, crash_at):
    """The swap renames the old directory away (1), then the new one in (2): a crash at either point leaves the
    previous outputs whole, or no output at all, never a mix; the next write cleans up and succeeds."""
    import regmix_megatron.fileio as fileio

    out = tmp_path / "out"
    _write_outputs(out, "first")
    real_rename, calls = os.rename, []

    def crashing_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == crash_at:
            raise KeyboardInterrupt("killed")  # not caught by anything: like a kill at this instruction
        return real_rename(src, dst)

    monkeypatch.setattr(fileio.os, "rename", crashing_rename)
    with pytest.raises(KeyboardInterrupt):
        _write_outputs(out, "second")
    monkeypatch.setattr(fileio.os, "rename", real_rename)
    visible = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".tmp-")]
    if out.exists():
        assert (out / "x.txt").read_text() == (out / "sub" / "y.txt").read_text() == "first"
    else:
        assert visible == []
    _write_outputs(out, "third")
    assert (out / "x.txt").read_text() == (out / "sub" / "y.txt").read_text() == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the killed write's leftovers are gone


def test_atomic_dir_refuses_a_directory_holding_other_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(DataError, match=r"--output-dir .*out holds files that this command does not write \(notes\.md\)"):
        _write_outputs(out, "x")
    assert (out / "notes.md").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.md"]
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="exists and is not a directory"):
        _write_outputs(tmp_path / "file", "x")


def test_set_aside_keeps_each_corrupt_copy(tmp_path):
    path = tmp_path / "result.json"
    for text in ("{trunc", "{also"):
        path.write_text(text)
        set_aside(path)
    assert not path.exists()
    assert (tmp_path / "result.json.corrupt-1").read_text() == "{trunc"
    assert (tmp_path / "result.json.corrupt-2").read_text() == "{also"


def test_a_failed_write_names_the_target_file(tmp_path, monkeypatch):
    """A full disk: ``write`` raises ENOSPC without a file name; the error carries the target's path."""
    import errno

    target = tmp_path / "out.json"
    with pytest.raises(OSError) as err:
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []

"""A folder of outputs written whole and in place: the folder the user gave keeps its identity (a link, a mount
point, its permissions), a failed or killed write leaves the previous outputs whole, a half-updated folder never
reads as complete, and the next write finishes one killed while it moved its files."""

import errno
import json
import os
import subprocess

import pytest

from regmix_megatron import output_folder as of
from regmix_megatron.errors import DataError
from regmix_megatron.output_folder import OUTPUTS_FILE, output_folder, read_outputs, seal_folder

#: A writer that owns x.txt and, per phase, phase<k>/a.txt (like a schedule export).
OWNED = ("x.txt", "phase[0-9]*/a.txt")


class Killed(BaseException):
    """A kill at one instruction: nothing catches it (no cleanup runs after it in a real kill either)."""


def _write(out, text, phases=2, fail=False):
    with output_folder(out, owned=OWNED, what="--output-dir") as stage:
        (stage / "x.txt").write_text(text)
        if fail:
            raise RuntimeError("failed mid-write")
        for k in range(1, phases + 1):
            (stage / f"phase{k}").mkdir()
            (stage / f"phase{k}" / "a.txt").write_text(text)
            seal_folder(stage / f"phase{k}")


def _texts(out) -> set[str]:
    """The text of every data file under ``out`` (outputs.json and temporary entries left out)."""
    return {p.read_text() for p in out.rglob("*.txt") if not any(q.startswith(".tmp-") for q in p.parts)}


def test_a_write_is_whole_and_a_failed_one_keeps_the_previous(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        _write(out, "first", fail=True)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # a failed first write creates nothing
    _write(out, "first", phases=3)
    assert set(read_outputs(out)["files"]) == {"x.txt", *(f"phase{k}/{n}" for k in (1, 2, 3)
                                                          for n in ("a.txt", OUTPUTS_FILE))}
    marker_before = (out / OUTPUTS_FILE).read_bytes()
    with pytest.raises(RuntimeError):
        _write(out, "second", fail=True)
    assert _texts(out) == {"first"} and (out / OUTPUTS_FILE).read_bytes() == marker_before
    _write(out, "second", phases=2)  # the old phase3/ goes: it is not part of the new version
    assert _texts(out) == {"second"} and not (out / "phase3").exists()
    assert read_outputs(out / "phase2")["files"] == {"a.txt": {"bytes": 6, "sha256": of.sha256_file(out / "phase2" / "a.txt")}}
    assert sorted(p.name for p in out.iterdir()) == [OUTPUTS_FILE, "phase1", "phase2", "x.txt"]


def _calls_during_commit(monkeypatch, crash_at):
    """Make the ``crash_at``-th rename or removal in the folder raise :class:`Killed`; return the call log."""
    calls = []

    def killing(real):
        def call(*args, **kwargs):
            calls.append(args)
            if len(calls) == crash_at:
                raise Killed()
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(of.os, "replace", killing(os.replace))
    monkeypatch.setattr(of.Path, "unlink", killing(of.Path.unlink))
    return calls


@pytest.mark.parametrize("crash_at", range(1, 15))  # the 14 renames and removals of this write
def test_a_kill_at_any_step_never_leaves_a_complete_looking_mix(tmp_path, monkeypatch, crash_at):
    """A kill at each rename and removal of a write (the staged marker, the journal, every move, the old phase's
    removal, the markers): the folder reads as the old outputs whole, or as incomplete, never as complete with
    mixed content; the next write into it first finishes the killed one (all new), then writes its own."""
    out = tmp_path / "out"
    _write(out, "old", phases=3)
    calls = _calls_during_commit(monkeypatch, crash_at)
    try:
        _write(out, "new", phases=2)
    except Killed:
        pass
    monkeypatch.undo()
    if len(calls) < crash_at:
        pytest.skip(f"the write made only {len(calls)} calls")
    for folder in (out, out / "phase1", out / "phase2"):
        try:
            listed = read_outputs(folder)
        except DataError as exc:
            assert "incomplete" in str(exc) or f"no {OUTPUTS_FILE}" in str(exc)
            continue
        texts = {(folder / rel).read_text() for rel in listed["files"] if rel.endswith(".txt")}
        assert len(texts) == 1, (folder, texts)  # a complete-looking folder is all old or all new
    interrupted = json.loads((out / OUTPUTS_FILE).read_text()).get("complete") is False
    with pytest.raises(RuntimeError):
        _write(out, "third", fail=True)  # a failing write: the killed one is finished first, then kept
    assert _texts(out) == ({"new"} if interrupted else {"old"})
    assert read_outputs(out) and (not (out / "phase3").exists() if interrupted else True)
    _write(out, "third")
    assert _texts(out) == {"third"} and read_outputs(out)
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_a_symlinked_folder_keeps_its_link_and_gets_the_files(tmp_path):
    target = tmp_path / "volume" / "exports"
    target.mkdir(parents=True)
    link = tmp_path / "out"
    link.symlink_to(target)
    _write(link, "one")
    _write(link, "two")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _texts(target) == {"two"} and read_outputs(link)


def test_a_read_only_folder_is_refused_and_left_as_it_was(tmp_path):
    out = tmp_path / "out"
    _write(out, "one")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    out.chmod(0o555)
    try:
        with pytest.raises(DataError, match=rf"--output-dir {out} is read-only \(mode dr-xr-xr-x\).*chmod u\+w"):
            _write(out, "two")
        assert oct(out.stat().st_mode & 0o777) == "0o555"
        (out / "phase1").chmod(0o555)
        out.chmod(0o755)
        with pytest.raises(DataError, match=rf"--output-dir {out / 'phase1'} is read-only"):
            _write(out, "two")
    finally:
        out.chmod(0o755)
        (out / "phase1").chmod(0o755)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_mount_point_is_written_in_place(tmp_path):
    """A container volume: renaming the mount point fails with EBUSY, so the folder must never be renamed. A real
    bind mount where this runs as root, else a stand-in that makes every rename of the folder fail so."""
    out = tmp_path / "volume"
    out.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(out), str(out)], capture_output=True).returncode == 0
    try:
        if not mounted:
            pytest.skip("cannot bind-mount here (needs root)")
        (out / "lost+found").mkdir()  # what ext4 keeps at a volume's root: neither ours nor foreign
        inode = out.stat().st_ino
        _write(out, "one")
        _write(out, "two")
        assert out.stat().st_ino == inode and _mounted(out)
        assert _texts(out) == {"two"} and (out / "lost+found").is_dir() and read_outputs(out)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(out)], capture_output=True)


def _mounted(path) -> bool:
    """Whether ``path`` is a mount point now (``/proc/self/mountinfo``: a bind mount on the same file system too)."""
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == str(path) for line in fh)


def test_a_folder_that_cannot_be_renamed_is_written(tmp_path, monkeypatch):
    """The same without root: any rename of the folder itself raises EBUSY."""
    out = tmp_path / "volume"
    out.mkdir()

    def busy(real):
        def call(src, dst, *args, **kwargs):
            if os.path.abspath(src) == str(out) or os.path.abspath(dst) == str(out):
                raise OSError(errno.EBUSY, "Device or resource busy", str(src))
            return real(src, dst, *args, **kwargs)
        return call

    monkeypatch.setattr(of.os, "rename", busy(os.rename))
    monkeypatch.setattr(of.os, "replace", busy(os.replace))
    _write(out, "one")
    _write(out, "two")
    assert _texts(out) == {"two"}


def test_foreign_files_a_file_and_a_dangling_link_are_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    _write(out, "one")
    (out / "phase2" / "notes.md").write_text("mine")
    with pytest.raises(DataError, match=r"holds files that this command does not write \(phase2/notes\.md\)"):
        _write(out, "two")
    assert _texts(out) == {"one"} and (out / "phase2" / "notes.md").read_text() == "mine"
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="is a file, not a folder"):
        _write(tmp_path / "file", "x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is a link to .*nowhere, which does not exist"):
        _write(tmp_path / "dangling", "x")


def test_readers_refuse_a_folder_without_its_marker_or_with_a_changed_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").write_text("written by hand or by an older version")
    with pytest.raises(DataError, match=rf"{out} has no {OUTPUTS_FILE}, the list of its outputs written last"):
        read_outputs(out)
    _write(out, "one")
    (out / "phase1" / "a.txt").write_text("changed since")
    with pytest.raises(DataError, match=r"phase1/a\.txt is missing or changed since outputs\.json listed it"):
        read_outputs(out)
    journal = json.loads((out / OUTPUTS_FILE).read_text()) | {"complete": False}
    (out / OUTPUTS_FILE).write_text(json.dumps(journal))
    with pytest.raises(DataError, match="is incomplete"):
        read_outputs(out)

"""Atomic writes: a failed or killed write leaves the previous output intact (one file, several files) and nothing
complete-looking, and an error names the file that failed; reads are strict (a key given twice is refused) and
name the file; outputs never overwrite inputs. (Folders of outputs: tests/test_output_folder.py.)"""

import os
import stat

import pytest

from regmix_megatron.errors import DataError
from regmix_megatron.fileio import (
    atomic_files,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    check_output_paths,
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


def test_an_error_inside_several_files_names_the_file_that_failed(tmp_path):
    """``sweep collect`` named excluded.json whichever of its three files failed, and ``sample`` named its hidden
    temporary file: the error names the target whose write failed, also through a temp of a temp."""
    import errno

    from regmix_megatron.fileio import named_as

    a, b, c = tmp_path / "excluded.json", tmp_path / "results.parquet", tmp_path / "results.csv"
    for failing in range(3):
        with pytest.raises(OSError) as err:
            with atomic_files(a, b, c) as temps:
                with named_as(temps[failing]):
                    raise OSError(errno.ENOSPC, "No space left on device")  # write() names no file
        assert err.value.filename == str([a, b, c][failing])
    with pytest.raises(OSError) as err:
        with atomic_files(a, b) as (ta, tb):
            atomic_write_text(tb, "x")  # a writer that writes its own temp beside the temp it was given
            with atomic_path(ta) as inner:
                raise OSError(errno.ENOSPC, "No space left on device", str(inner))
    assert err.value.filename == str(a) and not [p for p in tmp_path.iterdir()]


# ---- one strict reader -------------------------------------------------------------------------------------
def test_a_key_given_twice_is_refused_in_json_and_yaml_at_any_depth(tmp_path):
    (tmp_path / "c.json").write_text('{"optim": {"lr": 1, "lr": 2}}')
    with pytest.raises(DataError, match=r"c\.json: \['lr'\] listed more than once in one object"):
        read_json(tmp_path / "c.json")
    (tmp_path / "c.yaml").write_text("preset: tiny\nmixture:\n  code: 0.5\n  web: 0.2\n  code: 0.3\n")
    with pytest.raises(DataError, match=r"c\.yaml: \['code'\] listed more than once in one mapping \(lines 3 and 5\)"):
        read_yaml(tmp_path / "c.yaml")
    (tmp_path / "merge.yaml").write_text("base: &b {lr: 1, steps: 2}\nrun:\n  <<: *b\n  lr: 3\n")
    assert read_yaml(tmp_path / "merge.yaml")["run"] == {"lr": 3, "steps": 2}  # a merge key is meant to be overridden
    (tmp_path / "tag.yaml").write_text("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(DataError, match="invalid YAML"):
        read_yaml(tmp_path / "tag.yaml")


# ---- inputs stay inputs ----------------------------------------------------------------------------------------
def test_an_output_that_is_or_holds_an_input_is_refused_naming_both(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    domains = data / "domains.json"
    domains.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(domains)
    with pytest.raises(DataError, match=rf"--output {link} is also the input --domains-json {domains}"):
        check_output_paths({"--domains-json": str(domains)}, files={"--output": link})
    with pytest.raises(DataError, match=rf"--output-dir {data} holds the input --domains-json {domains}"):
        check_output_paths({"--domains-json": domains}, dirs={"--output-dir": data})
    with pytest.raises(DataError, match=rf"--output-dir {domains} is a file, not a folder"):
        check_output_paths({}, dirs={"--output-dir": domains})
    with pytest.raises(DataError, match=rf"--metrics-json {data} is a folder"):
        check_output_paths({}, files={"--metrics-json": data})
    m = tmp_path / "m.jsonl"
    with pytest.raises(DataError, match="is also the input --mixture"):
        check_output_paths({"--mixture": f"{m}:3"}, files={"--output": m})
    run = tmp_path / "run"
    run.mkdir()
    check_output_paths({"CONFIG": run / "config.yaml"}, dirs={"--output-dir": run}, own_records=("config.yaml",))
    check_output_paths({"--domains-json": domains, "--config": None}, files={"--output": tmp_path / "out.jsonl"},
                       dirs={"--output-dir": tmp_path / "new"})


def test_an_input_is_the_file_itself_or_the_usual_file_in_the_folder_given(tmp_path):
    from regmix_megatron.data.manifest import DomainRegistry
    from regmix_megatron.fileio import file_or_in_folder

    named = tmp_path / "elsewhere.json"
    named.write_text("{}")
    assert file_or_in_folder(named, "domains.json") == named  # a file is taken as it is, whatever its name
    assert file_or_in_folder(tmp_path, "domains.json") == tmp_path / "domains.json"  # a folder: its usual file
    missing = tmp_path / "missing.json"
    assert file_or_in_folder(missing, "domains.json") == missing  # left to the reader, which names it
    with pytest.raises(DataError, match=rf"{tmp_path}/domains\.json: file not found"):
        DomainRegistry.load(tmp_path)  # the folder form names the file it looked for

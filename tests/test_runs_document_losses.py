"""``document_losses.json``: per-document losses written and read back by their typed reader, and files that are
not one refused with the file named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regmix_megatron.runs.document_losses import (
    FILE_NAME,
    FORMAT,
    DocumentLosses,
    RunDocumentLosses,
    read_document_losses,
)
from regmix_megatron.errors import DataError
from regmix_megatron.runs.run_dir import write_document_losses


def record() -> RunDocumentLosses:
    rng = np.random.default_rng(3)
    sums = rng.uniform(0, 40, size=5)
    sums[2] = 0.0
    return RunDocumentLosses(run_id="abc", step=80, splits={
        "valid": {"qa": DocumentLosses(loss_sum=sums, num_tokens=[7, 3, 0, 12, 1]),
                  "code": DocumentLosses(loss_sum=[1 / 3], num_tokens=[1])},
        "test": {"qa": DocumentLosses(loss_sum=[2.5, 0.1], num_tokens=[2, 1])}})


def test_written_losses_read_back_bit_for_bit(tmp_path):
    written = record()
    path = write_document_losses(tmp_path, written)
    assert path == tmp_path / FILE_NAME and json.loads(path.read_text())["format"] == FORMAT
    read = read_document_losses(tmp_path)  # the run directory, or the file itself
    assert read_document_losses(path).to_json_obj() == read.to_json_obj() == written.to_json_obj()
    assert (read.run_id, read.step, sorted(read.splits)) == ("abc", 80, ["test", "valid"])
    for split, domains in written.splits.items():
        for name, losses in domains.items():
            got = read.get(split, name)
            assert np.array_equal(got.loss_sum, losses.loss_sum) and got.loss_sum.dtype == np.float64
            assert np.array_equal(got.num_tokens, losses.num_tokens) and got.num_tokens.dtype == np.int64
    qa = read.get("valid", "qa")
    assert qa.num_documents == 4 and qa.total_tokens == 23
    assert qa.mean_loss == pytest.approx(qa.loss_sum.sum() / 23)
    with pytest.raises(DataError, match="no per-document losses for split 'train'"):
        read.get("train", "qa")
    with pytest.raises(DataError, match="for domain 'math' on 'valid'"):
        read.get("valid", "math")


@pytest.mark.parametrize("change, message", [
    ({"format": "regmix-megatron/document-losses/v9"}, "expected 'regmix-megatron/document-losses/v1'"),
    ({"splits": [1]}, "'splits' must map"),
    ({"step": "80"}, "'step' \\(an integer\\)"),
    ({"splits": {"valid": {"qa": {"loss_sum": [1.0, 2.0], "num_tokens": [1]}}}}, "splits.valid.qa: .*same length"),
    ({"splits": {"valid": {"qa": {"loss_sum": [1.0], "num_tokens": [1.5]}}}}, "splits.valid.qa: .*integers"),
    ({"splits": {"valid": {"qa": {"loss_sum": [1.0], "num_tokens": [-1]}}}}, "negative"),
    ({"splits": {"valid": {"qa": {"loss_sum": [1.0]}}}}, "splits.valid.qa: expected"),
])
def test_a_file_that_is_not_per_document_losses_is_refused_by_name(tmp_path, change, message):
    obj = dict(record().to_json_obj(), **change)
    (tmp_path / FILE_NAME).write_text(json.dumps(obj))
    with pytest.raises(DataError, match=f"{FILE_NAME}.*{message}"):
        read_document_losses(tmp_path)

"""The evaluator's tokens and documents (``megatron/evaluation.py``) on indexed datasets built here with known
document lengths: windows, which document every scored token belongs to, ``all`` (the whole split), and the
per-document sums adding up to the domain's loss."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore")

SEQ = 8


def write_prefix(prefix, documents: list[list[int]], first_token: int) -> list[int]:
    """A ``.bin/.idx`` pair of megatron-core's builder; a document given as several lengths is several sequences.
    Token values count up from ``first_token`` (every token is its own position in the stream); returns the
    document lengths."""
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.int32)
    token = first_token
    for lengths in documents:
        n = sum(lengths)
        builder.add_document(torch.arange(token, token + n, dtype=torch.int32), lengths)
        token += n
    builder.finalize(f"{prefix}.idx")
    return [sum(lengths) for lengths in documents]


@pytest.fixture
def split(tmp_path):
    """Two prefixes, 7 documents (the second of 3 sequences, the fifth empty) of known lengths; stream position p
    holds token p."""
    a = write_prefix(tmp_path / "a", [[5], [3, 4, 2], [1], [13]], 0)
    b = write_prefix(tmp_path / "b", [[9], [], [6, 4]], sum(a))
    lengths = a + b
    return [str(tmp_path / "a"), str(tmp_path / "b")], np.array(lengths)


def expected_counts(lengths: np.ndarray, num_scored: int) -> np.ndarray:
    """Brute force: stream positions 1..num_scored are scored, each counted for the document it lies in."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    counts = np.bincount(owner[1:num_scored + 1], minlength=len(lengths))
    last = owner[num_scored]
    return counts[:last + 1]


def test_the_first_n_tokens_are_windows_and_every_label_counts_for_its_document(split):
    from regmix_megatron.megatron.evaluation import domain_tokens, read_first_tokens

    prefixes, lengths = split
    tokens = domain_tokens(prefixes, seq_length=SEQ, num_tokens=20, where="d valid")
    assert tokens.num_tokens == 16 and tokens.windows.shape == (2, SEQ + 1)  # 20 asked: 2 whole windows
    stream = read_first_tokens(prefixes, 21)
    assert np.array_equal(stream, np.arange(21))  # documents in file order, over both prefixes
    assert np.array_equal(tokens.windows, [stream[0:9], stream[8:17]])  # overlapping by one token
    # document 1 (3 sequences) straddles the windows; document 3 is cut by the 16th label
    counts = tokens.document_num_tokens()
    assert np.array_equal(counts, expected_counts(lengths, 16)) and counts.tolist() == [4, 9, 1, 2]
    assert tokens.num_documents == 4 and tokens.num_split_documents == 7
    # a token's loss lands on its document: losses equal to the label's stream position
    losses = tokens.windows[:, 1:].astype(np.float64)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    want = [np.arange(1, 17)[owner[1:17] == k].sum() for k in range(4)]
    assert tokens.document_loss_sums(losses).tolist() == want


def test_more_tokens_reach_into_the_second_prefix_and_skip_its_empty_document(split):
    from regmix_megatron.megatron.evaluation import domain_tokens

    prefixes, lengths = split
    tokens = domain_tokens(prefixes, seq_length=SEQ, num_tokens=40, where="d valid")
    assert tokens.num_tokens == 40
    counts = tokens.document_num_tokens()
    assert np.array_equal(counts, expected_counts(lengths, 40))
    assert counts[5] == 0 and len(counts) == 7  # the empty document keeps its index; the last one is cut
    losses = tokens.windows[:, 1:].astype(np.float64)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    assert np.array_equal(tokens.document_loss_sums(losses),
                          [np.arange(1, 41)[owner[1:41] == k].sum() for k in range(7)])


def test_all_scores_the_whole_split_with_a_masked_partial_window(split):
    from regmix_megatron.megatron.evaluation import domain_tokens, iterate_eval_batches

    prefixes, lengths = split
    total = int(lengths.sum())  # 47 tokens: 46 labels, 5 whole windows and one of 6
    tokens = domain_tokens(prefixes, seq_length=SEQ, num_tokens="all", where="d valid")
    assert tokens.num_tokens == total - 1 and tokens.windows.shape == (6, SEQ + 1)
    counts = tokens.document_num_tokens()
    assert counts.tolist() == [lengths[0] - 1, *lengths[1:]]  # every token but the very first
    assert tokens.num_documents == 6 and tokens.num_split_documents == 7  # the empty one has nothing to score
    batches = list(iterate_eval_batches(tokens.windows, 4, tokens.num_tokens))
    masks = np.concatenate([b["loss_mask"].numpy() for b in batches])
    assert masks.sum() == total - 1 and masks[5].tolist() == [1] * 6 + [0] * 2 and not masks[6:].any()
    labels = np.concatenate([b["labels"].numpy() for b in batches])
    assert np.array_equal(labels[masks > 0], np.arange(1, total))  # each label once, in order


def test_fixed_counts_keep_the_windows_and_masks_of_before(split):
    """With a count, the windows are those of the evaluator before per-document losses: the tokens read, cut into
    ``num_tokens // seq`` windows, all positions scored."""
    from regmix_megatron.megatron.evaluation import domain_tokens, iterate_eval_batches, read_first_tokens

    prefixes, _ = split
    for asked in (8, 17, 40, 45):
        tokens = domain_tokens(prefixes, seq_length=SEQ, num_tokens=asked, where="d valid")
        stream = read_first_tokens(prefixes, asked + 1)
        n = (len(stream) - 1) // SEQ
        old = stream[np.arange(n)[:, None] * SEQ + np.arange(SEQ + 1)[None, :]]
        assert np.array_equal(tokens.windows, old) and tokens.num_tokens == n * SEQ
        masks = np.concatenate([b["loss_mask"].numpy() for b in iterate_eval_batches(tokens.windows, 4,
                                                                                      tokens.num_tokens)])
        assert masks[:n].all() and not masks[n:].any()


def test_too_few_tokens_for_a_window_names_the_domain(tmp_path):
    from regmix_megatron.megatron.evaluation import domain_tokens

    write_prefix(tmp_path / "tiny", [[3], [2]], 0)
    with pytest.raises(DataError, match=r"domain 'qa' valid: only 5 tokens.*seq_length"):
        domain_tokens([str(tmp_path / "tiny")], seq_length=SEQ, num_tokens=64, where="domain 'qa' valid")
    whole = domain_tokens([str(tmp_path / "tiny")], seq_length=SEQ, num_tokens="all", where="domain 'qa' valid")
    assert whole.num_tokens == 4 and whole.document_num_tokens().tolist() == [2, 2]  # one partial window


def test_per_document_sums_give_the_evaluators_loss(split):
    """The reduction the trainer uses (float32 sums per micro-batch of the masked token losses, accumulated in
    float64) and the per-document float64 sums give the same mean to float precision."""
    import torch

    from regmix_megatron.megatron.evaluation import document_losses, domain_tokens, iterate_eval_batches

    prefixes, _ = split
    rng = np.random.default_rng(0)
    for asked in (40, "all"):
        tokens = domain_tokens(prefixes, seq_length=SEQ, num_tokens=asked, where="d valid")
        loss_sum, count, per_token = 0.0, 0.0, []
        for batch in iterate_eval_batches(tokens.windows, 4, tokens.num_tokens):
            losses = torch.from_numpy(rng.uniform(0.5, 9.0, size=batch["labels"].shape).astype(np.float32))
            loss_sum += float(torch.sum(losses * batch["loss_mask"]))  # as train._loss_func / _reduce_sums
            count += float(batch["loss_mask"].sum())
            per_token.append(losses.numpy())
        docs = document_losses(tokens, np.concatenate(per_token))
        assert docs.total_tokens == count == tokens.num_tokens
        assert docs.mean_loss == pytest.approx(loss_sum / count, rel=1e-6)

"""Exact, fast evaluation of a LightGBM regression model on many candidate mixtures.

Search predicts millions of candidates; ``Booster.predict`` spends its time on branch mispredictions while
walking ~1000 trees per row (the per-tree cost is unpredictable branches, not arithmetic). This module
evaluates the same model with QuickScorer's bitvector idea (Lucchese et al., SIGIR 2015, written from the
published description) arranged node-major so that it is branch-free and vectorizes across candidates:

- Leaves of each tree are numbered left to right. Each internal node gets a bitmask with zeros exactly on the
  leaves of its LEFT subtree: a candidate that goes right at that node cannot exit at those leaves.
- For a chunk of candidates (:data:`CHUNK`, features laid out column-wise) and a block of trees
  (:data:`TREE_BLOCK`, so the per-(tree, candidate) bitvectors stay in L2 cache), every internal node ANDs its
  mask into the bitvectors of the candidates that go right there (``x > threshold``), as a branch-free select
  over a contiguous row of candidates (SIMD).
- A tree's exit leaf for a candidate is the lowest set bit of its bitvector (the leftmost leaf not ruled out).
  Leaf values are then added per candidate in tree order. Chunks run in parallel (``numba.prange``).

Exactness (predictions identical to ``Booster.predict``, not just close): thresholds and leaf values are read
from ``Booster.dump_model()`` (printed with 17 significant digits, so exact doubles); LightGBM's rule
``x <= threshold`` goes left; inputs with ``|x| <= 1e-35`` are read as 0 (as LightGBM's dense-row reader does);
NaN inputs follow LightGBM per node: missing type ``None`` -> treated as 0, ``NaN`` -> the node's default
direction, ``Zero`` -> NaN and zeros take the default direction. Nodes are grouped by (feature, missing mode,
default direction), and a "takes the default" candidate gets the comparison value -inf (default left: never
masked) or +inf (default right: always masked) for that group; LightGBM clamps thresholds to +-1e300, so this
is exact. Single-leaf trees contribute their value; outputs are summed from 0.0 in tree order, as LightGBM
does. Categorical splits and linear trees are refused. Trees with more than 64 leaves fall back to an exact
pointer-chasing traversal (slower).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import RegmixError

logger = logging.getLogger(__name__)

#: Candidates per parallel work item (one vector lane each in the node loop).
CHUNK = 256
#: Trees whose bitvectors are kept at once (TREE_BLOCK * CHUNK * 4-8 bytes: fits in L2).
TREE_BLOCK = 128
#: LightGBM's kZeroThreshold (a float literal 1e-35f, compared as double).
ZERO_THRESHOLD = float(np.float32(1e-35))
#: Objectives whose prediction is the raw score (no link function).
IDENTITY_OBJECTIVES = ("regression", "regression_l2", "l2", "mean_squared_error", "mse", "regression_l1", "l1",
                       "mae", "huber", "fair", "quantile", "mape")

KIND_NONE, KIND_NAN, KIND_ZERO = 0, 1, 2
_MISSING_KINDS = {"None": KIND_NONE, "NaN": KIND_NAN, "Zero": KIND_ZERO}
#: Group modes: how a candidate's value is turned into the value compared with the group's thresholds.
MODE_NONE, MODE_NAN_LEFT, MODE_NAN_RIGHT, MODE_ZERO_LEFT, MODE_ZERO_RIGHT = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class CompiledForest:
    """The arrays the kernels read. Build with :func:`compile_booster`."""

    num_features: int
    num_trees: int
    max_leaves: int
    # node groups: one per (feature, mode); a mode fixes how NaN/zero inputs are compared
    group_feature: np.ndarray  # int64[G]
    group_mode: np.ndarray  # int64[G]
    group_threshold_start: np.ndarray  # int64[G + 1] into group_thresholds
    group_thresholds: np.ndarray  # float64: each group's distinct thresholds, ascending
    # nodes ordered by (tree block, group, threshold)
    block_start: np.ndarray  # int64[num_tree_blocks + 1] into node_*
    node_group: np.ndarray  # int64[N]
    node_threshold: np.ndarray  # float64[N]
    node_rank: np.ndarray  # int32/int64[N]: index of the node's threshold among its group's distinct thresholds
    node_tree: np.ndarray  # int64[N]
    node_mask: np.ndarray  # uint32/uint64[N]
    leaf_offset: np.ndarray  # int64[T]
    leaf_value: np.ndarray  # float64[L]
    # plain layout for the traversal fallback / cross-check
    split_feature: np.ndarray  # int64[M] per internal node (all trees)
    threshold: np.ndarray  # float64[M]
    kind: np.ndarray  # int64[M]
    default_left: np.ndarray  # bool[M]
    left: np.ndarray  # int64[M]: >= 0 internal node index (global), < 0: ~leaf global index
    right: np.ndarray  # int64[M]
    root: np.ndarray  # int64[T]: as left/right encoding

    @property
    def num_nodes(self) -> int:
        return int(self.node_threshold.size)


def compile_booster(booster: Any) -> CompiledForest:
    """Parse ``booster.dump_model()`` into :class:`CompiledForest` arrays."""
    model = booster.dump_model()
    _check_model(model)
    trees = model["tree_info"]
    flat = _flatten_trees(trees)
    mask_dtype, width = _mask_layout(flat.max_leaves)
    nodes = _node_layout(flat.node_records, len(trees), width, mask_dtype)
    i64 = lambda xs: np.asarray(xs, dtype=np.int64)  # noqa: E731
    return CompiledForest(
        num_features=int(model["max_feature_idx"]) + 1,
        num_trees=len(trees),
        max_leaves=flat.max_leaves,
        **nodes,
        leaf_offset=i64(flat.leaf_offset),
        leaf_value=np.asarray(flat.leaf_value, dtype=np.float64),
        split_feature=i64(flat.split_feature),
        threshold=np.asarray(flat.threshold, dtype=np.float64),
        kind=i64(flat.kind),
        default_left=np.asarray(flat.default_left, dtype=np.bool_),
        left=i64(flat.left),
        right=i64(flat.right),
        root=i64(flat.root),
    )


def _check_model(model: dict) -> None:
    objective = str(model.get("objective", "regression")).split()[0]
    if objective not in IDENTITY_OBJECTIVES:
        raise RegmixError(f"fast prediction supports regression objectives with identity output, not {objective!r}")
    if model.get("num_tree_per_iteration", 1) != 1:
        raise RegmixError("fast prediction supports one tree per iteration (regression), not multiclass models")
    if model.get("average_output"):
        raise RegmixError("fast prediction does not support random-forest (average_output) models")


@dataclass
class _FlatTrees:
    """Every tree's internal nodes and leaves in flat lists (the plain layout), plus one record per internal
    node: ``(feature, missing kind, threshold, tree, first, one past last local leaf of its left subtree,
    default_left)``."""

    split_feature: list = field(default_factory=list)
    threshold: list = field(default_factory=list)
    kind: list = field(default_factory=list)
    default_left: list = field(default_factory=list)
    left: list = field(default_factory=list)
    right: list = field(default_factory=list)
    leaf_value: list = field(default_factory=list)
    leaf_offset: list = field(default_factory=list)
    root: list = field(default_factory=list)
    node_records: list = field(default_factory=list)
    max_leaves: int = 1


def _flatten_trees(trees: list) -> _FlatTrees:
    flat = _FlatTrees()
    for t, info in enumerate(trees):
        offset = len(flat.leaf_value)
        flat.leaf_offset.append(offset)
        local_leaves: list[float] = []
        rid, _, _ = _visit(info["tree_structure"], t, offset, local_leaves, flat)
        flat.root.append(rid)
        flat.leaf_value.extend(local_leaves)
        flat.max_leaves = max(flat.max_leaves, len(local_leaves))
    return flat


def _visit(node: dict, t: int, offset: int, local_leaves: list, flat: _FlatTrees) -> tuple[int, int, int]:
    """Add a subtree; returns (encoded id, first local leaf, one past last local leaf) of it. Leaves are
    numbered left to right; a leaf's id is ``~(global leaf index)``."""
    if "leaf_value" in node and "split_feature" not in node:
        if "leaf_coeff" in node:
            raise RegmixError("fast prediction does not support linear trees (linear_tree=True)")
        local_leaves.append(float(node["leaf_value"]))
        idx = len(local_leaves) - 1
        return ~(offset + idx), idx, idx + 1
    if node.get("decision_type", "<=") != "<=":
        raise RegmixError(f"fast prediction supports numerical splits only, got decision_type "
                          f"{node.get('decision_type')!r} (categorical features)")
    me = len(flat.split_feature)
    flat.split_feature.append(int(node["split_feature"]))
    flat.threshold.append(float(node["threshold"]))
    flat.kind.append(_MISSING_KINDS[str(node.get("missing_type", "None"))])
    flat.default_left.append(bool(node.get("default_left", True)))
    flat.left.append(0)
    flat.right.append(0)
    lid, llo, lhi = _visit(node["left_child"], t, offset, local_leaves, flat)
    rid, _, rhi = _visit(node["right_child"], t, offset, local_leaves, flat)
    flat.left[me], flat.right[me] = lid, rid
    flat.node_records.append((flat.split_feature[me], flat.kind[me], flat.threshold[me], t, llo, lhi,
                              flat.default_left[me]))
    return me, llo, rhi


def _mask_layout(max_leaves: int) -> tuple[Any, int]:
    """Bitvector dtype and width; width 0 when a tree has more than 64 leaves (traversal only)."""
    if max_leaves <= 32:
        return np.uint32, 32
    if max_leaves <= 64:
        return np.uint64, 64
    return np.uint64, 0


def _mode_of(k: int, dleft: bool) -> int:
    if k == KIND_NONE:
        return MODE_NONE
    if k == KIND_NAN:
        return MODE_NAN_LEFT if dleft else MODE_NAN_RIGHT
    return MODE_ZERO_LEFT if dleft else MODE_ZERO_RIGHT


def _node_layout(node_records: list, num_trees: int, width: int, mask_dtype: Any) -> dict[str, np.ndarray]:
    """The bitvector layout: node groups by (feature, mode), nodes ordered by (tree block, group, threshold,
    tree), each with the mask that clears its left subtree's leaves and its threshold's rank in its group."""
    full = (1 << width) - 1 if width else 0

    def mask_of(lo: int, hi: int) -> int:
        return full & ~(((1 << (hi - lo)) - 1) << lo) if width else 0

    group_ids: dict[tuple[int, int], int] = {}
    for r in sorted(node_records, key=lambda r: (r[0], _mode_of(r[1], r[6]))):
        group_ids.setdefault((r[0], _mode_of(r[1], r[6])), len(group_ids))
    num_blocks = max(1, -(-num_trees // TREE_BLOCK))
    keyed = sorted(
        ((r[3] // TREE_BLOCK, group_ids[(r[0], _mode_of(r[1], r[6]))], r[2], r[3], mask_of(r[4], r[5]))
         for r in node_records),
        key=lambda z: (z[0], z[1], z[2], z[3]),
    )
    block_start = np.searchsorted(np.array([z[0] for z in keyed], dtype=np.int64), np.arange(num_blocks + 1))
    groups = sorted(group_ids.items(), key=lambda kv: kv[1])
    # A candidate's value v becomes, per group, its rank r = #(distinct thresholds < v); then
    # v > threshold_i  <=>  r > i, so the node loop compares small integers of the bitvectors' lane width.
    distinct: list[np.ndarray] = [np.empty(0)] * len(groups)
    for gid in range(len(groups)):
        distinct[gid] = np.unique(np.array([z[2] for z in keyed if z[1] == gid], dtype=np.float64))
    rank_dtype = np.int32 if mask_dtype == np.uint32 else np.int64
    i64 = lambda xs: np.asarray(xs, dtype=np.int64)  # noqa: E731
    return {
        "group_feature": i64([f for (f, _), _ in groups]),
        "group_mode": i64([m for (_, m), _ in groups]),
        "group_threshold_start": np.concatenate(([0], np.cumsum([d.size for d in distinct]))).astype(np.int64),
        "group_thresholds": np.concatenate(distinct) if distinct else np.empty(0, dtype=np.float64),
        "block_start": block_start.astype(np.int64),
        "node_rank": np.array([int(np.searchsorted(distinct[z[1]], z[2])) for z in keyed], dtype=rank_dtype),
        "node_group": i64([z[1] for z in keyed]),
        "node_threshold": np.asarray([z[2] for z in keyed], dtype=np.float64),
        "node_tree": i64([z[3] for z in keyed]),
        "node_mask": np.asarray([z[4] for z in keyed], dtype=mask_dtype),
    }


# ---- numba kernels (compiled on first use, cached on disk by numba) ----------------------------------------
import numba  # noqa: E402
from numba.cpython.unsafe.numbers import trailing_zeros  # noqa: E402

_INF = np.inf


@numba.njit(cache=True, nogil=True, inline="always")
def _compare_value(v, mode):
    """The value compared with a group's thresholds (x > threshold: the candidate goes right)."""
    if np.isnan(v):
        if mode == 0:
            return 0.0
        return -_INF if (mode == 1 or mode == 3) else _INF
    if v >= -ZERO_THRESHOLD and v <= ZERO_THRESHOLD:
        if mode == 3:
            return -_INF
        if mode == 4:
            return _INF
        return 0.0
    return v


@numba.njit(parallel=True, cache=True, nogil=True)
def bitvector_predict(x, out, group_feature, group_mode, group_threshold_start, group_thresholds, block_start,
                      node_group, node_rank, node_tree, node_mask, leaf_offset, leaf_value, ones_arr):
    n = x.shape[0]
    num_trees = leaf_offset.shape[0]
    num_groups = group_feature.shape[0]
    num_blocks = block_start.shape[0] - 1
    ones = ones_arr[0]
    rank_dtype = node_rank.dtype
    num_chunks = (n + CHUNK - 1) // CHUNK
    for c in numba.prange(num_chunks):
        start = c * CHUNK
        width = min(CHUNK, n - start)
        ranks = np.zeros((num_groups, CHUNK), dtype=rank_dtype)  # padding lanes: rank 0, never masked
        bits = np.empty((TREE_BLOCK, CHUNK), dtype=ones_arr.dtype)
        acc = np.zeros(CHUNK, dtype=np.float64)
        for g in range(num_groups):
            f = group_feature[g]
            mode = group_mode[g]
            thresholds = group_thresholds[group_threshold_start[g]:group_threshold_start[g + 1]]
            for j in range(width):
                v = _compare_value(x[start + j, f], mode)
                ranks[g, j] = np.searchsorted(thresholds, v)
        for b in range(num_blocks):
            t0 = b * TREE_BLOCK
            t1 = min(num_trees, t0 + TREE_BLOCK)
            bits[:, :] = ones
            for k in range(block_start[b], block_start[b + 1]):
                r = node_rank[k]
                m = node_mask[k]
                row = bits[node_tree[k] - t0]
                v = ranks[node_group[k]]
                for j in range(CHUNK):
                    row[j] &= m if v[j] > r else ones
            for t in range(t0, t1):
                row = bits[t - t0]
                base = leaf_offset[t]
                for j in range(CHUNK):
                    acc[j] += leaf_value[base + trailing_zeros(row[j])]
        for j in range(width):
            out[start + j] = acc[j]


@numba.njit(parallel=True, cache=True, nogil=True)
def traverse_leaves(x, out, split_feature, threshold, kind, default_left, left, right, root, leaf_value):
    n = x.shape[0]
    num_trees = root.shape[0]
    for i in numba.prange(n):
        acc = 0.0
        for t in range(num_trees):
            node = root[t]
            while node >= 0:
                v = x[i, split_feature[node]]
                k = kind[node]
                if np.isnan(v):
                    if k == 1 or k == 2:
                        node = left[node] if default_left[node] else right[node]
                        continue
                    v = 0.0
                if v >= -ZERO_THRESHOLD and v <= ZERO_THRESHOLD:
                    if k == 2:
                        node = left[node] if default_left[node] else right[node]
                        continue
                    v = 0.0
                node = left[node] if v <= threshold[node] else right[node]
            acc += leaf_value[~node]
        out[i] = acc

def _kernels() -> dict:
    return {"bitvector": bitvector_predict, "traverse": traverse_leaves}


class FastPredictor:
    """Predicts exactly like ``booster.predict`` on float64 rows, many times faster on large batches."""

    def __init__(self, booster: Any) -> None:
        self.forest = compile_booster(booster)
        self.use_bitvectors = self.forest.max_leaves <= 64
        if not self.use_bitvectors:
            logger.warning("a tree has %d leaves (> 64): using the exact traversal path (slower)",
                           self.forest.max_leaves)

    @classmethod
    def from_regressor(cls, regressor: Any) -> "FastPredictor":
        booster = getattr(regressor, "booster", None)
        if booster is None:
            raise RegmixError(f"fast prediction needs a fitted LightGBM regressor, got {type(regressor).__name__}")
        return cls(booster)

    def _check(self, x: Any) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.forest.num_features:
            raise RegmixError(f"fast prediction: expected rows of {self.forest.num_features} features, got shape "
                              f"{x.shape}")
        return x

    def predict(self, x: Any) -> np.ndarray:
        x = self._check(x)
        out = np.empty(x.shape[0], dtype=np.float64)
        if x.shape[0] == 0:
            return out
        if self.use_bitvectors:
            return self._predict_bitvectors(x, out)
        return self.predict_traversal(x)

    def _predict_bitvectors(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        f = self.forest
        ones = np.array([np.iinfo(f.node_mask.dtype).max], dtype=f.node_mask.dtype)
        _kernels()["bitvector"](x, out, f.group_feature, f.group_mode, f.group_threshold_start, f.group_thresholds,
                                f.block_start, f.node_group, f.node_rank, f.node_tree, f.node_mask, f.leaf_offset,
                                f.leaf_value, ones)
        return out

    def predict_traversal(self, x: Any) -> np.ndarray:
        """The plain exact traversal (fallback and cross-check)."""
        x = self._check(x)
        out = np.empty(x.shape[0], dtype=np.float64)
        f = self.forest
        _kernels()["traverse"](x, out, f.split_feature, f.threshold, f.kind, f.default_left, f.left, f.right,
                               f.root, f.leaf_value)
        return out


def warmup() -> float:
    """Compile (or load from numba's on-disk cache) every kernel; returns the seconds it took."""
    import lightgbm as lgb

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    x = rng.random((64, 3))
    y = x[:, 0] + 0.1 * x[:, 1]
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 2},
                        lgb.Dataset(x, y), num_boost_round=2)
    fp = FastPredictor(booster)
    fp.predict(x)
    fp.predict_traversal(x)
    return time.perf_counter() - start

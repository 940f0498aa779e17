"""Read character vectors from an R lazy-load database (``.rdx`` index + ``.rdb`` blobs) in pure Python.

An ``.rdx`` is a gzip-compressed R serialization of a list with ``variables`` (name -> [offset, length] into
the ``.rdb``). Each ``.rdb`` blob is a 4-byte big-endian uncompressed length followed by a zlib stream of an
R serialization in XDR format (``"X\\n"``, version 2 or 3). This reader understands the subset of R's
serialization format that data packages use: vectors, strings, pairlists, symbols, attributes and references.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from ...errors import DataError

NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP, DOTSXP = 9, 10, 13, 14, 15, 16, 17
VECSXP, EXPRSXP, RAWSXP, S4SXP = 19, 20, 24, 25
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP, BASENAMESPACE_SXP = 255, 254, 253, 252, 251, 250
NAMESPACESXP, PACKAGESXP, PERSISTSXP, EMPTYENV_SXP, BASEENV_SXP = 249, 248, 247, 242, 241
ATTRLANGSXP, ATTRLISTSXP, ALTREP_SXP = 240, 239, 238


class RSymbol(str):
    """An R symbol (as opposed to a string)."""


class RObject:
    """A deserialized R value: ``value`` (Python list/str/None/...), ``attributes`` (dict), ``rtype``."""

    def __init__(self, rtype: int, value, attributes: dict | None = None) -> None:
        self.rtype = rtype
        self.value = value
        self.attributes = attributes or {}

    def __repr__(self) -> str:
        return f"RObject(type={self.rtype}, len={len(self.value) if hasattr(self.value, '__len__') else '-'})"


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.refs: list = []
        self.source = source

    def fail(self, what: str) -> DataError:
        return DataError(f"{self.source}: cannot read R serialization at byte {self.pos}: {what}")

    def int(self) -> int:
        if self.pos + 4 > len(self.data):
            raise self.fail("truncated")
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def length(self) -> int:
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def header(self) -> None:
        if self.raw(2) != b"X\n":
            raise self.fail("not XDR format (expected 'X\\n')")
        version = self.int()
        self.int()
        self.int()
        if version == 3:
            self.raw(self.int())  # native encoding name
        elif version != 2:
            raise self.fail(f"unsupported serialization version {version}")

    def item(self):
        """One R object. Long (over 60 lines) on purpose: it is the single dispatch over R's SEXP type codes, one
        short branch per type, so each branch reads beside the type it decodes."""
        flags = self.int()
        rtype = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if rtype == NILVALUE_SXP or rtype in (EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP,
                                              MISSINGARG_SXP, BASENAMESPACE_SXP):
            return None
        if rtype == REFSXP:
            index = flags >> 8
            if index == 0:
                index = self.int()
            return self.refs[index - 1]
        if rtype == PERSISTSXP:
            self.int()
            value = [self.item() for _ in range(self.int())]
            self.refs.append(value)
            return value
        if rtype == SYMSXP:
            sym = RSymbol(self.item() or "")
            self.refs.append(sym)
            return sym
        if rtype in (NAMESPACESXP, PACKAGESXP):
            self.int()
            value = RObject(rtype, [self.item() for _ in range(self.int())])
            self.refs.append(value)
            return value
        if rtype == ENVSXP:
            self.int()  # locked
            env = RObject(ENVSXP, {})
            self.refs.append(env)
            enclos, frame, hashtab, attrib = self.item(), self.item(), self.item(), self.item()
            env.value = {"enclos": enclos, "frame": frame, "hashtab": hashtab}
            env.attributes = _pairlist_dict(attrib)
            return env
        if rtype in (LISTSXP, LANGSXP, CLOSXP, PROMSXP, DOTSXP, ATTRLANGSXP, ATTRLISTSXP):
            attrs = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            cell = RObject(LISTSXP, [(tag, car)], _pairlist_dict(attrs))
            if isinstance(cdr, RObject) and cdr.rtype == LISTSXP:
                cell.value.extend(cdr.value)
            return cell
        if rtype == CHARSXP:
            n = self.int()
            return None if n == -1 else self.raw(n).decode("utf-8", errors="replace")
        if rtype == ALTREP_SXP:
            info, state, attrs = self.item(), self.item(), self.item()
            return _altrep(info, state, _pairlist_dict(attrs))
        if rtype in (LGLSXP, INTSXP):
            n = self.length()
            value = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
        elif rtype == REALSXP:
            n = self.length()
            value = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        elif rtype == CPLXSXP:
            n = self.length()
            value = list(struct.unpack_from(f">{2 * n}d", self.data, self.pos))
            self.pos += 16 * n
        elif rtype == STRSXP:
            value = [self.item() for _ in range(self.length())]
        elif rtype in (VECSXP, EXPRSXP):
            value = [self.item() for _ in range(self.length())]
        elif rtype == RAWSXP:
            value = self.raw(self.length())
        elif rtype == S4SXP:
            value = None
        else:
            raise self.fail(f"unsupported R type {rtype}")
        attrs = _pairlist_dict(self.item()) if has_attr else {}
        return RObject(rtype, value, attrs)


def _pairlist_dict(obj) -> dict:
    if not isinstance(obj, RObject) or obj.rtype != LISTSXP:
        return {}
    return {str(tag): value for tag, value in obj.value if tag is not None}


def _altrep(info, state, attrs: dict) -> RObject:
    """Expand the ALTREP classes R writes for data (compact integer/real sequences, wrappers)."""
    cls = str(info.value[0][1]) if isinstance(info, RObject) and info.value else ""
    if cls in ("compact_intseq", "compact_realseq") and isinstance(state, RObject):
        n, start, step = state.value[:3]
        n = int(n)
        values = [start + i * step for i in range(n)]
        return RObject(INTSXP if cls == "compact_intseq" else REALSXP, values, attrs)
    if cls.startswith("wrap_") and isinstance(state, RObject) and state.value:
        inner = state.value[0]
        if isinstance(inner, RObject):
            inner.attributes.update(attrs)
            return inner
    if cls == "deferred_string" and isinstance(state, RObject) and state.value:
        inner = state.value[0][1] if isinstance(state.value[0], tuple) else state.value[0]
        if isinstance(inner, RObject):
            return RObject(STRSXP, [str(v) for v in inner.value], attrs)
    raise DataError(f"unsupported ALTREP class {cls!r} in R serialization")


def unserialize(data: bytes, source: str = "<R data>"):
    """Deserialize one XDR R serialization (already decompressed)."""
    reader = _Reader(data, source)
    reader.header()
    return reader.item()


def read_lazyload_db(prefix: Path) -> dict[str, object]:
    """All variables of the lazy-load DB ``prefix.rdx`` / ``prefix.rdb`` as deserialized R objects."""
    prefix = Path(prefix)
    rdx = prefix.with_suffix(".rdx")
    rdb = prefix.with_suffix(".rdb")
    raw = rdx.read_bytes()
    index = unserialize(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw[4:]), str(rdx))
    names = index.attributes.get("names")
    if not isinstance(index, RObject) or names is None:
        raise DataError(f"{rdx}: not a lazy-load index (no names)")
    fields = dict(zip(names.value, index.value))
    variables = fields.get("variables")
    if not isinstance(variables, RObject):
        raise DataError(f"{rdx}: lazy-load index has no 'variables'")
    blob = rdb.read_bytes()
    out: dict[str, object] = {}
    for name, where in zip(variables.attributes["names"].value, variables.value):
        offset, length = (int(x) for x in where.value[:2])
        chunk = blob[offset:offset + length]
        try:
            payload = zlib.decompress(chunk[4:])
        except zlib.error:
            raise DataError(f"{rdb}: variable {name} is not zlib-compressed (bzip2/xz lazy-load DBs are "
                            f"not supported)") from None
        out[name] = unserialize(payload, f"{rdb}:{name}")
    return out


def character_vector(obj) -> list[str]:
    """A deserialized R character vector as a list of str (NA -> "")."""
    if not isinstance(obj, RObject) or obj.rtype != STRSXP:
        raise DataError(f"expected an R character vector, got {obj!r}")
    return [s if s is not None else "" for s in obj.value]

"""Which fields of a dataclass have no docstring under them (the attribute docstring convention)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap


def undocumented_fields(cls: type) -> list[str]:
    """The dataclass fields of ``cls`` without a string literal right after their definition."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    documented = set()
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            documented.add(node.target.id)
    return [f.name for f in dataclasses.fields(cls) if f.name not in documented]

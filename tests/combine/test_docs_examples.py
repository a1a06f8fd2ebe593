"""The first python block of docs/combine.md and docs/bilevel.md runs as written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc", ["combine.md", "bilevel.md", "continual.md"])
def test_first_example_runs(doc, capsys):
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, doc, "exec"), {"__name__": "__doc_example__"})

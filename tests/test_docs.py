"""docs/plugins.md quotes the example third-party package verbatim, so the walk-through cannot drift."""
import re

import pytest

from .conftest import REPO

PACKAGE = REPO / "examples" / "slamfw-linear-emulator"


def excerpts():
    text = (REPO / "docs" / "plugins.md").read_text()
    for lang, body in re.findall(r"```(python|toml)\n(.*?)```", text, re.S):
        first, _, rest = body.partition("\n")
        m = re.match(r"# from (\S+)", first)
        assert m, f"docs/plugins.md: a {lang} block does not say which file it is from: {first!r}"
        yield m.group(1), rest


def test_every_block_names_its_file():
    assert len(list(excerpts())) >= 7


@pytest.mark.parametrize("path,code", list(excerpts()), ids=lambda v: v if "/" in str(v) or "." in str(v)[:20] else None)
def test_excerpt_is_verbatim_from_the_package(path, code):
    source = (PACKAGE / path).read_text()
    assert code.strip("\n") in source, f"docs/plugins.md quotes {path}, but the file says otherwise"

"""docs/plugins.md cannot drift from working code.

Every python/toml block is either an excerpt of the example third-party package, marked
``# from <file>`` and quoted verbatim, or a complete component, marked
``# example: <kind> <name>``, which is executed, registered through its own hook and put through
its kind's conformance kit.
"""
import re
import types

import numpy as np
import pytest

from slamfw import registry, testing
from slamfw.components.kinds import KINDS

from .conftest import REPO

PACKAGE = REPO / "examples" / "slamfw-linear-emulator"
DOC = REPO / "docs" / "plugins.md"


def blocks():
    text = DOC.read_text()
    for lang, body in re.findall(r"```(python|toml)\n(.*?)```", text, re.S):
        first, _, rest = body.partition("\n")
        yield lang, first, rest


def excerpts():
    for _, first, rest in blocks():
        m = re.match(r"# from (\S+)", first)
        if m:
            yield m.group(1), rest


def examples():
    for _, first, rest in blocks():
        m = re.match(r"# example: (\w+) (\S+)", first)
        if m:
            yield m.group(1), m.group(2), rest


def test_every_block_is_an_excerpt_or_an_example():
    for lang, first, _ in blocks():
        assert re.match(r"# (from \S+|example: \w+ \S+)", first), \
            f"docs/plugins.md: a {lang} block is neither an excerpt nor an example: {first!r}"
    assert len(list(excerpts())) >= 8
    assert {kind for kind, _, _ in examples()} == set(KINDS) - {"emulator"}   # the emulator is the walk-through


@pytest.mark.parametrize("path,code", list(excerpts()), ids=lambda v: v if "/" in str(v) or "." in str(v)[:20] else None)
def test_excerpt_is_verbatim_from_the_package(path, code):
    source = (PACKAGE / path).read_text()
    assert code.strip("\n") in source, f"docs/plugins.md quotes {path}, but the file says otherwise"


def _sample_npz_directory(folder):
    """What the reader example reads: one .npz per star."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    wave = np.linspace(4000.0, 5000.0, 300)
    for i in range(8):
        flux = 1 - 0.3 * np.exp(-0.5 * ((wave - 4500 - 5 * i) / 3) ** 2) + rng.normal(0, 0.01, wave.size)
        np.savez(folder / f"star{i:02d}.npz", wave=wave, flux=flux, ivar=np.full(wave.size, 1e4),
                 Teff=5000.0 + 100 * i, logg=4.0, FeH=-0.1 * i)
    return {"path": str(folder)}


@pytest.mark.parametrize("kind,name,code", list(examples()), ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None)
def test_example_registers_and_passes_its_kit(kind, name, code, tmp_path):
    """Executed as a module, registered through pluggy like any plugin, then put through its kit."""
    module = types.ModuleType(f"docs_example_{kind}")
    exec(compile(code, f"docs/plugins.md ({kind} {name})", "exec"), module.__dict__)
    registry.register_plugin(module, name=f"docs-example-{kind}")
    try:
        found = registry.lookup(kind, name)
        assert found is not None and found.plugin == f"docs-example-{kind}", registry.broken_plugins()
        cls = found.cls
    finally:
        registry.reset()
    assert issubclass(cls, KINDS[kind].base)
    params = _sample_npz_directory(tmp_path / "spectra") if kind == "reader" else None
    results = testing.check_component(cls, params, raise_on_fail=False)
    failed = [(r.name, r.message) for r in results if not r.passed]
    assert not failed, failed

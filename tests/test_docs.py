"""The plugin walk-through in docs/plugins.md runs as written."""
import re
import types

import numpy as np

from slamfw import plugins
from slamfw.model import SlamfwModel

from .conftest import REPO


def test_plugin_walkthrough_code_runs(small_train, tmp_path):
    text = (REPO / "docs" / "plugins.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    mod = types.ModuleType("doc_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), mod.__dict__)
    plugins.register_plugin(mod, name="doc-plugin", distribution="doc-dist")
    try:
        emu = plugins.create("emulator", "linear", {})
        emu.fit(small_train.labels, small_train.flux, small_train.ivar)
        theta = small_train.labels[:3]
        assert emu.predict(theta).shape == (3, small_train.n_pixels)
        assert emu.jacobian(theta).shape == (3, small_train.n_pixels, 3)  # core fallback
        model = SlamfwModel(emulator=emu, emulator_name="linear", wave=small_train.wave,
                            label_names=small_train.label_names, label_units=small_train.label_units,
                            train_labels=small_train.labels, train_ids=small_train.ids)
        back = SlamfwModel.load(model.save(tmp_path / "lin.npz"))
        np.testing.assert_array_equal(back.emulator.predict(theta), emu.predict(theta))
        res = plugins.create("inferer", "lm", {"progress": False}).infer(back, small_train.flux[:5], small_train.ivar[:5])
        assert res.labels.shape == (5, 3) and np.isfinite(res.labels).all()
    finally:
        plugins.reset()

"""The conformance kit: every built-in emulator passes, and it catches broken emulators."""
import types

import numpy as np
import pytest

import slamfw
from slamfw import registry
from slamfw.cli import main
from slamfw.testing import EmulatorCheckError, check_emulator
from slamfw_plugins.emulators.cannon import CannonEmulator

BUILTIN = [
    ("slam", {"progress": False}),
    ("slam", {"C": [3.0], "gamma": [0.2], "n_folds": 3, "max_kernel_stars": 10, "progress": False}),
    ("cannon", {}),
    ("cannon", {"order": 1, "model_error": "scatter"}),
    ("cannon", {"order": 3, "regularization": 10.0}),
    ("krr", {}),
]


@pytest.mark.parametrize("name,params", BUILTIN, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BUILTIN)])
def test_builtin_emulators_pass(name, params):
    results = check_emulator(registry.get_component("emulator", name), params)
    assert len(results) == 14 and all(r.passed for r in results)


def test_instances_are_checked_with_their_parameters():
    results = check_emulator(CannonEmulator(order=1))
    assert all(r.passed for r in results)


class FlippedJacobian(CannonEmulator):
    def jacobian(self, labels):
        return -super().jacobian(labels)


class Unvalidated(CannonEmulator):
    def predict(self, labels):
        z = (np.atleast_2d(labels) - self.label_scaler_.mean_[: np.shape(labels)[-1]]) / 1.0
        return np.zeros((z.shape[0], self.n_pixels_)) + self.coef_[:, 0]


class Noisy(CannonEmulator):
    def fit(self, labels, flux, ivar):
        super().fit(labels, flux, ivar)
        self.coef_ = self.coef_ + np.random.default_rng().normal(0, 1e-3, self.coef_.shape)  # unseeded
        return self


class LosesState(CannonEmulator):
    def to_state(self):
        arrays, meta = super().to_state()
        arrays["coef"] = arrays["coef"].astype(np.float16)
        return arrays, meta


@pytest.mark.parametrize("cls,failing", [
    (FlippedJacobian, {"jacobian matches central finite differences"}),
    (Unvalidated, {"clear errors on wrong label count / NaN labels", "unfitted use raises NotFittedError",
                   "fit reproduces the training spectra", "jacobian matches central finite differences"}),
    (Noisy, {"deterministic given its parameters (seed)"}),
    (LosesState, {"save -> load gives identical predictions"}),
])
def test_kit_catches_broken_emulators(cls, failing):
    results = check_emulator(cls, raise_on_fail=False)
    assert {r.name for r in results if not r.passed} == failing
    with pytest.raises(EmulatorCheckError, match=f"fails {len(failing)} of 14"):
        check_emulator(cls)


def test_cli_check_emulator(capsys):
    assert main(["check-emulator", "krr", "--param", "alpha=[0.01]"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 14 and "14 passed, 0 failed" in out
    plugin = types.SimpleNamespace(slamfw_register_emulators=slamfw.hookimpl(
        lambda register: register("flipped", FlippedJacobian)))
    registry.register_plugin(plugin, name="flipped-plugin")
    try:
        assert main(["check-emulator", "flipped"]) == 1
        out = capsys.readouterr().out
        assert "FAIL  jacobian matches central finite differences" in out and "13 passed, 1 failed" in out
    finally:
        registry.unregister_plugin("flipped-plugin")
    assert main(["check-emulator", "nope"]) == 2
    assert "no emulator named 'nope'" in capsys.readouterr().err

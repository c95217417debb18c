import pytest

from slamfw import ConfigError
from slamfw.config import apply_override, load_config, parse_value, validate_config
from slamfw.pipeline import resolve_config

BASE = """
seed = 3
labels = ["Teff", "logg", "FeH"]
[data.train]
reader = "mock"
n_stars = 10
[normalizer]
name = "none"
[emulator]
name = "slam"
C = [1.0]
[inferer]
name = "lm"
"""


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_toml_and_yaml_agree(tmp_path):
    a = load_config(write(tmp_path, BASE))
    yaml_text = """
seed: 3
labels: [Teff, logg, FeH]
data: {train: {reader: mock, n_stars: 10}}
normalizer: {name: none}
emulator: {name: slam, C: [1.0]}
inferer: {name: lm}
"""
    b = load_config(write(tmp_path, yaml_text, "c.yaml"))
    assert a.model_dump() == b.model_dump()


def test_set_overrides(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.C=[1, 10]", "seed=7", "output.dir=x/y",
                                              "data.train.where.Teff=[4000, 5000]"])
    assert cfg.emulator.params()["C"] == [1, 10]
    assert cfg.seed == 7 and cfg.output.dir == "x/y"
    assert cfg.data.train.params()["where"] == {"Teff": [4000, 5000]}
    assert parse_value("true") is True and parse_value("abc") == "abc" and parse_value("1e3") == 1000.0


def test_typo_in_plugin_key_reports_dotted_path(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.gama=[0.1]"])
    with pytest.raises(ConfigError, match=r"emulator\.gama: unknown key"):
        resolve_config(cfg)
    cfg = load_config(write(tmp_path, BASE), ["data.train.n_star=5"])
    with pytest.raises(ConfigError, match=r"data\.train\.n_star: unknown key"):
        resolve_config(cfg)


def test_typo_in_core_key_reports_dotted_path(tmp_path):
    with pytest.raises(ConfigError, match=r"preprocess\.wave_stp"):
        load_config(write(tmp_path, BASE + "\n[preprocess]\nwave_stp = 1.0\n"))
    with pytest.raises(ConfigError, match=r"output\.chunk_size"):
        load_config(write(tmp_path, BASE), ["output.chunk_size=0"])


def test_train_only_keys_on_the_test_side(tmp_path):
    with pytest.raises(ConfigError, match=r"data.*test\.holdout.*data\.train\.holdout"):
        load_config(write(tmp_path, BASE), ["data.test.reader=mock", "data.test.holdout=0.3"])


def test_unknown_plugin_suggests(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.name=slm"])
    with pytest.raises(ConfigError, match=r"emulator\.name: no emulator named 'slm'.*Did you mean 'slam'"):
        resolve_config(cfg)


def test_bad_value_type(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.n_folds=one"])
    with pytest.raises(ConfigError, match=r"emulator\.n_folds"):
        resolve_config(cfg)


def test_env_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("SLAMFW_TEST_DIR", "/data/here")
    cfg = load_config(write(tmp_path, BASE), ["output.dir=${SLAMFW_TEST_DIR}/out"])
    assert cfg.output.dir == "/data/here/out"
    cfg = load_config(write(tmp_path, BASE), ["output.dir=${SLAMFW_NOPE:-fallback}"])
    assert cfg.output.dir == "fallback"
    with pytest.raises(ConfigError, match="SLAMFW_NOPE is not set"):
        load_config(write(tmp_path, BASE), ["output.dir=${SLAMFW_NOPE}"])


def test_missing_file_and_bad_syntax(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "labels = [\n"))
    with pytest.raises(ConfigError, match="labels"):
        validate_config({"seed": 1})


def test_override_errors():
    raw = {"a": 1}
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        apply_override(raw, "novalue")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_override(raw, "a.b=2")
    raw = {"analyzers": [{"name": "x"}]}
    apply_override(raw, "analyzers.0.name=cv-scatter")
    assert raw["analyzers"][0]["name"] == "cv-scatter"


def test_resolved_config_has_defaults(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    res = resolve_config(cfg)
    assert res["emulator"]["epsilon"] == 0.05 and res["emulator"]["n_folds"] == 5
    assert res["inferer"]["max_nfev"] > 0
    assert res["data"]["train"]["n_stars"] == 10 and res["data"]["train"]["reader"] == "mock"

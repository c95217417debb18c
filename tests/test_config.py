import logging
from pathlib import Path

import pytest

from slamfw import ConfigError
from slamfw.config import apply_override, load_config, parse_value, resolve_config, selected, validate_config

BASE = """
seed = 3
labels = ["Teff", "logg", "FeH"]
[data.train]
reader = "mock"
[data.train.mock]
n_stars = 10
[normalizer]
name = "none"
[emulator]
name = "slam"
[emulator.slam]
C = [1.0]
pixels_per_task = 7
[emulator.cannon]
order = 3
[inferer]
name = "lm"
"""

FLAT = """
seed = 3
labels = ["Teff", "logg", "FeH"]
[data.train]
reader = "mock"
n_stars = 10
[emulator]
name = "slam"
C = [1.0]
gamma = [0.1]
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
data: {train: {reader: mock, mock: {n_stars: 10}}}
normalizer: {name: none}
emulator: {name: slam, slam: {C: [1.0], pixels_per_task: 7}, cannon: {order: 3}}
inferer: {name: lm}
"""
    b = load_config(write(tmp_path, yaml_text, "c.yaml"))
    assert a.model_dump() == b.model_dump()


def test_only_the_selected_table_is_used(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    sel = selected(cfg, "emulator")
    assert sel.name == "slam" and sel.params["C"] == [1.0] and sel.params["pixels_per_task"] == 7
    assert sel.params["random_state"] == 3            # the experiment's seed
    swapped = selected(load_config(write(tmp_path, BASE), ["emulator.name=cannon"]), "emulator")
    assert swapped.name == "cannon" and swapped.params["order"] == 3 and "C" not in swapped.params
    krr = selected(load_config(write(tmp_path, BASE), ["emulator.name=krr"]), "emulator")
    assert krr.name == "krr" and krr.params["alpha"]    # no table: the defaults
    reader = selected(load_config(write(tmp_path, BASE)), "data.train")
    assert reader.name == "mock" and reader.params["n_stars"] == 10 and reader.name_key == "reader"


def test_set_overrides(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.slam.C=[1, 10]", "seed=7", "output.dir=x/y",
                                              "data.train.mock.teff=[4000, 5000]"])
    assert selected(cfg, "emulator").params["C"] == [1.0, 10.0]
    assert cfg.seed == 7 and cfg.output.dir == "x/y"
    assert selected(cfg, "data.train").params["teff"] == [4000, 5000]
    assert parse_value("true") is True and parse_value("abc") == "abc" and parse_value("1e3") == 1000.0


def test_set_through_a_components_table_creates_its_section_selecting_it(tmp_path):
    """Found by a check of the docs: ``--set executor.local.workers=2`` on a config without
    ``[executor]`` failed ("executor.name: Field required") where ``--workers 2`` worked."""
    base = load_config(write(tmp_path, BASE))
    assert base.executor is None and base.prior is None
    cfg = load_config(write(tmp_path, BASE), ["executor.local.workers=2"])
    ex = selected(cfg, "executor")
    assert ex.name == "local" and ex.params["workers"] == 2
    assert selected(load_config(write(tmp_path, BASE), ["executor.dask.workers=3"]), "executor").name == "dask"
    # an existing section keeps its name; "name" itself, and a flat key, select nothing more
    cfg = load_config(write(tmp_path, BASE), ["executor.name=serial", "executor.local.workers=2"])
    assert selected(cfg, "executor").name == "serial"
    assert selected(load_config(write(tmp_path, BASE), ["emulator.krr.alpha=0.5"]), "emulator").name == "slam"
    with pytest.raises(ConfigError, match="executor.name"):
        load_config(write(tmp_path, BASE), ["executor.workers=2"])


@pytest.mark.parametrize("override, words", [("seed=-1", "seed"), ("seed=99999999999999", "seed"),
                                             ("preprocess.wave_min=nan", "preprocess.wave_min"),
                                             ("preprocess.wave_max=inf", "preprocess.wave_max"),
                                             ("preprocess.wave_step=inf", "preprocess.wave_step")])
def test_values_that_failed_deep_inside_are_config_errors(tmp_path, override, words):
    """Found by a bad-input hunt: each failed later with numpy's or scikit-learn's error."""
    with pytest.raises(ConfigError, match=words):
        load_config(write(tmp_path, BASE), [override])


def test_resolved_config_shows_the_selected_table_only(tmp_path):
    res = resolve_config(load_config(write(tmp_path, BASE)))
    assert set(res["emulator"]) == {"name", "slam"}
    assert res["emulator"]["slam"]["epsilon"] == 0.05 and res["emulator"]["slam"]["n_folds"] == 5
    assert res["inferer"] == {"name": "lm", "lm": res["inferer"]["lm"]} and res["inferer"]["lm"]["max_nfev"] > 0
    assert res["data"]["train"]["reader"] == "mock" and res["data"]["train"]["mock"]["n_stars"] == 10
    assert res["data"]["train"]["holdout"] == 0.0
    assert Path(res["output"]["dir"]).is_absolute()
    again = validate_config(res)  # the resolved config is itself a valid config
    assert selected(again, "emulator").params == selected(load_config(write(tmp_path, BASE)), "emulator").params


def test_old_flat_config_loads_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="slamfw"):
        sel = selected(load_config(write(tmp_path, FLAT)), "emulator")
    assert sel.params["C"] == [1.0] and sel.params["gamma"] == [0.1]
    assert selected(load_config(write(tmp_path, FLAT)), "data.train").params["n_stars"] == 10
    assert "old style" in caplog.text and "[emulator.slam]" in caplog.text
    # the flat keys belong to whichever emulator is selected: swapping says how to convert
    cfg = load_config(write(tmp_path, FLAT), ["emulator.name=cannon"])
    with pytest.raises(ConfigError, match=r"emulator\.C: unknown key.*old, flat style.*\[emulator\.<name>\]"):
        selected(cfg, "emulator")


def test_flat_override_applies_to_the_selected_component(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.n_folds=3"])
    assert selected(cfg, "emulator").params["n_folds"] == 3


def test_table_of_an_uninstalled_component_is_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="slamfw"):
        sel = selected(load_config(write(tmp_path, BASE), ["emulator.someday.alpha=1"]), "emulator")
    assert sel.name == "slam"
    assert "[emulator.someday] is the table of no installed emulator" in caplog.text


def test_typo_in_plugin_key_reports_dotted_path(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.slam.gama=[0.1]"])
    with pytest.raises(ConfigError, match=r"emulator\.slam\.gama: unknown key"):
        resolve_config(cfg)
    cfg = load_config(write(tmp_path, BASE), ["data.train.mock.n_star=5"])
    with pytest.raises(ConfigError, match=r"data\.train\.mock\.n_star: unknown key"):
        resolve_config(cfg)
    # a typo in a table that is not selected is not validated (it may belong to an absent plugin)
    resolve_config(load_config(write(tmp_path, BASE), ["emulator.cannon.ordre=2"]))


def test_typo_in_core_key_reports_dotted_path(tmp_path):
    with pytest.raises(ConfigError, match=r"preprocess\.wave_stp"):
        load_config(write(tmp_path, BASE + "\n[preprocess]\nwave_stp = 1.0\n"))
    with pytest.raises(ConfigError, match=r"output\.chunk_size"):
        load_config(write(tmp_path, BASE), ["output.chunk_size=0"])


def test_train_only_keys_on_the_test_side(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.test\.holdout: the hold-out split .*data\.train\.holdout"):
        load_config(write(tmp_path, BASE), ["data.test.reader=mock", "data.test.holdout=0.3"])
    with pytest.raises(ConfigError, match=r"data\.test\.clean: training-set cleaning .*data\.train\.clean"):
        load_config(write(tmp_path, BASE), ["data.test.reader=mock", "data.test.clean.folds=3"])


def test_unknown_plugin_suggests(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.name=slm"])
    with pytest.raises(ConfigError, match=r"emulator\.name: no emulator named 'slm'.*Did you mean 'slam'"):
        resolve_config(cfg)


def test_bad_value_type(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["emulator.slam.n_folds=one"])
    with pytest.raises(ConfigError, match=r"emulator\.slam\.n_folds"):
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
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ConfigError, match="not a text file"):
        load_config(tmp_path / "binary.toml")


def test_override_errors():
    raw = {"a": 1}
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        apply_override(raw, "novalue")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_override(raw, "a.b=2")
    raw = {"analyzers": [{"name": "x"}]}
    apply_override(raw, "analyzers.0.name=cv-scatter")
    assert raw["analyzers"][0]["name"] == "cv-scatter"
    apply_override(raw, "analyzers.1.name=cv-scatter")          # one past the end adds an item
    apply_override(raw, "analyzers.1.cv-scatter.snr_edges=[0, 50, 200]")
    assert raw["analyzers"][1] == {"name": "cv-scatter", "cv-scatter": {"snr_edges": [0, 50, 200]}}
    with pytest.raises(ConfigError, match="not an index of the list"):
        apply_override(raw, "analyzers.5.name=x")


TABLE_CFG = """
labels = ["Teff"]
[data.train]
reader = "table"
[data.train.table]
path = "data/train.npz"
[emulator]
name = "slam"
model = "models/m.npz"
"""


def test_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    conf_dir = tmp_path / "project" / "configs"
    conf_dir.mkdir(parents=True)
    path = write(conf_dir, TABLE_CFG, "exp.toml")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("project/configs/exp.toml"))
    assert selected(cfg, "data.train").params["path"] == str(conf_dir / "data" / "train.npz")
    assert selected(cfg, "emulator").core["model"] == str(conf_dir / "models" / "m.npz")
    # a path given on the command line is relative to the working directory
    cfg = load_config(path, ["data.train.table.path=here.npz", "emulator.model=m2.npz"])
    assert selected(cfg, "data.train").params["path"] == str(tmp_path / "here.npz")
    assert selected(cfg, "emulator").core["model"] == str(tmp_path / "m2.npz")
    # the resolved config records absolute paths, so it works from any directory
    res = resolve_config(load_config(path))
    assert res["data"]["train"]["table"]["path"] == str(conf_dir / "data" / "train.npz")
    assert res["emulator"]["model"] == str(conf_dir / "models" / "m.npz")


def test_core_keys_and_plugin_parameters_do_not_share_a_namespace(tmp_path):
    """A plugin may have parameters called ``name`` or ``model``: in its table they are its own."""
    import types

    import slamfw
    from slamfw import registry
    from slamfw_plugins.emulators.cannon import CannonEmulator

    class Named(CannonEmulator):
        class Params(CannonEmulator.Params):
            name: str = "unnamed"
            model: str = "quadratic"

    plugin = types.SimpleNamespace(slamfw_register_emulators=slamfw.hookimpl(lambda register: register("named", Named)))
    registry.register_plugin(plugin, name="named-plugin")
    try:
        text = BASE + '\n[emulator.named]\nname = "mine"\nmodel = "cubic"\n'
        cfg = load_config(write(tmp_path, text), ["emulator.name=named"])
        sel = selected(cfg, "emulator")
        assert sel.name == "named" and sel.params["name"] == "mine" and sel.params["model"] == "cubic"
        assert "model" not in sel.core            # the core's emulator.model (load a file) is unset
        assert resolve_config(cfg)["emulator"] == {"name": "named", "named": sel.params}
    finally:
        registry.reset()


@pytest.mark.parametrize("override, key", [("seed=true", "seed"), ("preprocess.wave_step=true", "preprocess.wave_step"),
                                           ("preprocess.max_bad_pixels=false", "preprocess.max_bad_pixels"),
                                           ("calibration.snr=[5, true]", "calibration.snr"),
                                           ("data.train.holdout=true", "data.train.holdout"),
                                           ("inferer.lm.n_starts=true", "inferer.lm.n_starts"),
                                           ("emulator.slam.C=[1.0, true]", "emulator.slam.C")])
def test_a_boolean_for_a_number_is_a_config_error(tmp_path, override, key):
    """Found by a bad-input hunt: pydantic read ``n_starts = true`` as 1 and ``wave_step = true``
    as a 1 A grid, silently."""
    with pytest.raises(ConfigError, match=rf"{key}: expected (a number|numbers), got .*\bboolean"):
        resolve_config(load_config(write(tmp_path, BASE), [override]))
    # booleans where booleans belong still load
    resolve_config(load_config(write(tmp_path, BASE), ["preprocess.rv_correct=false", "calibration.enabled=false"]))


def test_every_shipped_components_numbers_refuse_booleans():
    """Wherever plain pydantic would read ``true`` (alone, in a list or in a table) as a number, in
    a parameter of any registered component, slamfw's ``Params`` refuse it, naming the key; where
    it would keep a boolean, they take it. The oracle is a plain pydantic model of the same field,
    not slamfw's own reading of annotations."""
    from pydantic import ValidationError, create_model

    from slamfw import registry

    def holds_bool(v):
        return isinstance(v, bool) or (isinstance(v, (list, tuple)) and any(map(holds_bool, v))) or \
            (isinstance(v, dict) and any(map(holds_bool, v.values())))
    numeric = boolean = 0
    for kind, comps in registry.all_components().items():
        for name, reg in comps.items():
            for field, info in reg.cls.Params.model_fields.items():
                plain = create_model("Plain", x=(info.annotation, ...))
                for value in (True, [True, 1.0], {"a": True}, {"a": [True, 1.0]}):
                    try:
                        read = plain(x=value).x
                    except ValidationError:
                        continue                 # not a value of this field's shape
                    try:
                        reg.cls.Params.model_validate({field: value})
                        errors = []
                    except ValidationError as err:
                        errors = [e["msg"] for e in err.errors() if e["loc"][:1] == (field,)]
                    if holds_bool(read):         # a boolean kept as one: taken
                        boolean += 1
                        assert not errors, (kind, name, field, value, errors)
                    else:                        # read as a number by plain pydantic: refused
                        numeric += 1
                        assert any("boolean" in m for m in errors), (kind, name, field, value, errors)
    assert numeric >= 60 and boolean >= 10, (numeric, boolean)


@pytest.mark.parametrize("text, key, lines", [
    ("labels: [Teff]\npreprocess:\n  wave_min: 4100\nseed: 1\npreprocess:\n  max_bad_pixels: 10\n",
     "preprocess", "lines 2 and 5"),
    ("labels: [Teff]\nlabels: [logg]\n", "labels", "lines 1 and 2"),
    ("labels: [Teff]\ndata:\n  train:\n    reader: mock\n    mock: {n_stars: 10, n_stars: 20}\n", "n_stars", "line 5"),
    ("labels: [Teff]\nanalyzers:\n  - name: cv-scatter\n    cv-scatter:\n      snr_edges: [0, 50]\n"
     "      snr_edges: [0, 100]\n", "snr_edges", "lines 5 and 6"),
])
def test_yaml_refuses_a_duplicated_key_at_any_level(tmp_path, text, key, lines):
    """Found by a bad-input hunt: YAML kept only the last of two ``preprocess:`` blocks, silently
    (TOML refuses it)."""
    with pytest.raises(ConfigError, match=rf"c\.yaml'?: key '{key}' is given twice in the same mapping \({lines}\)"):
        load_config(write(tmp_path, text, "c.yaml"))


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    text = ("labels: [Teff]\nx-base: &base {n_stars: 10, snr: 50}\n"
            "data:\n  train:\n    reader: mock\n    mock:\n      <<: *base\n      n_stars: 20\n")
    from slamfw.config import read_config_file
    assert read_config_file(write(tmp_path, text, "c.yaml"))["data"]["train"]["mock"] == {"n_stars": 20, "snr": 50}


@pytest.mark.parametrize("assignment, where", [("labels.0.x=1", "labels.0"), ("labels.1.x.y=1", "labels.1"),
                                               ("analyzers.0.name.x=1", "analyzers.0.name")])
def test_set_into_a_list_item_that_is_a_value_is_refused(assignment, where):
    """Found by a bad-input hunt: ``--set labels.0.x=1`` was an internal error (TypeError: 'str'
    object does not support item assignment)."""
    raw = {"labels": ["Teff", "logg"], "analyzers": [{"name": "cv-scatter"}]}
    with pytest.raises(ConfigError, match=rf"--set .*: {where} is a value, not a section"):
        apply_override(raw, assignment)
    raw = {"analyzers": [None]}                       # an empty item becomes a section
    apply_override(raw, "analyzers.0.name=cv-scatter")
    assert raw == {"analyzers": [{"name": "cv-scatter"}]}


@pytest.mark.parametrize("edges, words", [("[100, 50, 0]", r"strictly increasing: edge 1 \(50\) is not above edge 0"),
                                          ("[0, 50, 50]", "strictly increasing"),
                                          ("[NaN, NaN]", "finite"), ("[Infinity, 0]", "strictly increasing"),
                                          ("[50]", "at least two edges"), ("[]", "at least two edges")])
def test_cv_scatter_refuses_edges_that_make_no_bins(tmp_path, edges, words):
    """Found by a bad-input hunt: decreasing or NaN edges were taken, and the per-S/N rows
    disappeared from the report, silently."""
    over = ["analyzers.0.name=cv-scatter", f"analyzers.0.cv-scatter.snr_edges={edges}"]
    with pytest.raises(ConfigError, match=rf"analyzers\.0\.cv-scatter\.snr_edges: .*{words}"):
        resolve_config(load_config(write(tmp_path, BASE), over))
    over[1] = "analyzers.0.cv-scatter.snr_edges=[0, 50, Infinity]"     # an open top bin
    assert resolve_config(load_config(write(tmp_path, BASE), over))["analyzers"][0]["cv-scatter"]["snr_edges"] == \
        [0.0, 50.0, float("inf")]


@pytest.mark.parametrize("snr", ["[Infinity]", "[10, NaN]", "[0]", "[-5]"])
def test_snr_degrade_refuses_non_finite_or_non_positive_snr(tmp_path, snr):
    """Found by a bad-input hunt: ``snr = [Infinity]`` failed late, inside matplotlib's log axis."""
    over = ["analyzers.0.name=snr-degrade", f"analyzers.0.snr-degrade.snr={snr}"]
    with pytest.raises(ConfigError, match=r"analyzers\.0\.snr-degrade\.snr\.\d: .*finite and > 0"):
        resolve_config(load_config(write(tmp_path, BASE), over))


def test_a_number_for_output_dir_is_its_text(tmp_path, monkeypatch):
    """Found by a bad-input hunt: ``--set output.dir=2024`` was refused, "Input should be a valid
    string"."""
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, BASE)
    assert load_config(path, ["output.dir=2024"]).output.dir == "2024"
    assert load_config(path, ["output.dir=1_000"]).output.dir == "1_000"        # as typed, not 1000
    assert load_config(path, ["output.dir=2024.10"]).output.dir == "2024.10"    # not 2024.1
    assert load_config(path, ["output.model_file=7"]).output.model_file == "7"
    assert load_config(path, ["emulator.model=12"]).emulator.model == "12"
    assert resolve_config(load_config(path, ["output.dir=2024"]))["output"]["dir"] == str(tmp_path / "2024")
    assert load_config(write(tmp_path, BASE + "[output]\ndir = 2024\n", "int.toml")).output.dir == "2024"
    with pytest.raises(ConfigError, match=r"output\.dir: expected a path, got the number 2024\.1: write it in quotes"):
        load_config(write(tmp_path, BASE + "[output]\ndir = 2024.10\n", "float.toml"))
    assert load_config(path, ["seed=5"]).seed == 5                                  # numbers stay numbers


def test_an_empty_list_of_output_formats_is_refused(tmp_path):
    """Found by a bad-input hunt: ``output.formats=[]`` ran the inference and wrote no catalogue."""
    with pytest.raises(ConfigError, match=r"output\.formats: give at least one catalogue format"):
        load_config(write(tmp_path, BASE), ["output.formats=[]"])
    assert load_config(write(tmp_path, BASE), ['output.formats=["ecsv"]']).output.formats == ["ecsv"]


@pytest.mark.parametrize("key", ["output.dir", "output.model_file"])
def test_an_empty_output_path_is_refused(tmp_path, key):
    """Found by a bad-input hunt: ``--set output.dir=`` wrote the run into the working directory."""
    with pytest.raises(ConfigError, match=rf"{key}: .*expected a path, got an empty one"):
        load_config(write(tmp_path, BASE), [f"{key}="])
    assert load_config(write(tmp_path, BASE), ["output.dir=."]).output.dir == "."


def test_a_calibration_snr_given_twice_is_refused(tmp_path):
    """Found by a bad-input hunt: calibration.snr = [20, 20] fitted an error model whose calibrated
    errors were as understated as the formal ones (pull widths 3.4)."""
    with pytest.raises(ConfigError, match=r"calibration.snr: .*S/N 20 given more than once"):
        load_config(write(tmp_path, BASE), ["calibration.snr=[20.0, 20.0, 80.0]"])
    assert load_config(write(tmp_path, BASE), ["calibration.snr=[80.0, 20.0]"]).calibration.snr == [20.0, 80.0]

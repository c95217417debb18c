import numpy as np
import pytest

from slamfw import DataError, SpectralSet, name_some, repeated


def make(n=3, p=5, **kw):
    args = dict(wave=np.linspace(4000, 4010, p), flux=np.ones((n, p)), ivar=np.ones((n, p)),
                ids=[f"s{i}" for i in range(n)], labels=np.arange(n * 2, dtype=float).reshape(n, 2),
                label_names=["Teff", "logg"])
    args.update(kw)
    return SpectralSet(**args)


def test_valid_set_and_defaults():
    ss = make()
    assert ss.n_stars == 3 and ss.n_pixels == 5
    assert ss.mask.all() and ss.label_units == ["", ""]


def test_nan_flux_names_star_and_wavelength():
    flux = np.ones((3, 5))
    flux[1, 2] = np.nan
    with pytest.raises(DataError, match=r"star 's1'.*not finite.*4005.00 A"):
        make(flux=flux)


def test_negative_ivar_names_star():
    ivar = np.ones((3, 5))
    ivar[2, 4] = -1
    with pytest.raises(DataError, match=r"star 's2'.*ivar must be finite and >= 0"):
        make(ivar=ivar)


def test_unsorted_wavelengths():
    with pytest.raises(DataError, match="increase strictly"):
        make(wave=np.array([4000, 4001, 4000.5, 4002, 4003.0]))


def test_arrays_that_hold_no_real_numbers_are_named():
    """Found by a bad-input hunt: a complex flux lost its imaginary part with only numpy's
    ComplexWarning, and text read as numbers or failed deep inside numpy."""
    cases = {"flux": (np.ones((3, 5)) * (1 + 0.5j), "flux in f.fits holds complex numbers"),
             "ivar": (np.ones((3, 5)).astype(str), "ivar in f.fits holds text"),
             "wave": (np.array(["a", "b", "c", "d", "e"]), "the wavelength array in f.fits holds text"),
             "labels": (np.ones((3, 2)) * 1j, "the label array in f.fits holds complex numbers")}
    for key, (value, words) in cases.items():
        with pytest.raises(DataError, match=words):
            make(source="f.fits", **{key: value})
    with pytest.raises(DataError, match="flux in f.fits holds text or other objects"):      # digits as objects too
        make(source="f.fits", flux=np.full((3, 5), "1.5", dtype=object))
    # real numbers of any kind, and an object array of them, are read as floats
    ss = make(flux=np.ones((3, 5), np.float32), ivar=np.ones((3, 5), int), labels=np.ones((3, 2), object))
    assert ss.flux.dtype == ss.ivar.dtype == ss.labels.dtype == np.float64


def test_stacking_a_set_without_rv_gives_its_stars_rv_0_not_unknown():
    """A reader without rv has spectra at rest (specutils' default radial_velocity of 0 gives no rv
    column): stacked with a set that has one, its stars get rv 0, not NaN (unknown, ``flag_rv``)."""
    from slamfw.config import PreprocessConfig
    from slamfw.preprocess import rest_frame_rv
    with_rv, without = make(meta={"rv": np.array([30.0, np.nan, 5.0]), "snr": np.ones(3)}), make(ids=["a", "b", "c"])
    both = SpectralSet.stack([with_rv, without])
    np.testing.assert_array_equal(both.meta["rv"], [30.0, np.nan, 5.0, 0.0, 0.0, 0.0])
    assert np.isnan(both.meta["snr"][3:]).all()            # other columns: NaN where a set lacks them
    rv, unknown = rest_frame_rv(both, PreprocessConfig())
    np.testing.assert_array_equal(unknown, [False, True, False, False, False, False])
    np.testing.assert_array_equal(rv, [30.0, 0.0, 5.0, 0.0, 0.0, 0.0])
    assert not rest_frame_rv(both, PreprocessConfig(rv_correct=False))[1].any()


def test_shape_mismatch_and_duplicates():
    with pytest.raises(DataError, match="pixels"):
        make(flux=np.ones((3, 4)))
    with pytest.raises(DataError, match="duplicate star ids: 'a'$"):
        make(ids=["a", "a", "b"])
    with pytest.raises(DataError, match="metadata column 'snr'"):
        make(meta={"snr": np.ones(2)})


def test_select_labels_and_subset():
    ss = make()
    sel = ss.select_labels(["logg"])
    assert sel.label_names == ["logg"]
    np.testing.assert_array_equal(sel.labels[:, 0], [1, 3, 5])
    with pytest.raises(DataError, match=r"\['FeH'\] not provided"):
        ss.select_labels(["FeH"])
    sub = ss.subset(np.array([False, True, True]))
    assert sub.ids.tolist() == ["s1", "s2"]


def test_select_labels_and_without_labels_share_the_spectra_and_leave_the_set_alone():
    ss = make(label_units=["K", "dex"], meta={"snr": np.array([10.0, 20.0, 30.0])})
    sel = ss.select_labels(["logg", "Teff"])
    assert sel.label_names == ["logg", "Teff"] and sel.label_units == ["dex", "K"]
    np.testing.assert_array_equal(sel.labels, ss.labels[:, ::-1])
    for key in ("wave", "flux", "ivar", "mask", "ids"):
        assert getattr(sel, key) is getattr(ss, key)          # shared, not copied
    none = ss.without_labels()
    assert none.labels is None and none.label_names == [] and none.label_units == []
    assert none.flux is ss.flux and none.n_stars == 3
    np.testing.assert_array_equal(none.meta["snr"], ss.meta["snr"])
    sel.meta["rv"] = np.zeros(3)                               # the new sets' meta dicts are their own
    none.label_names.append("x")
    assert "rv" not in ss.meta and "rv" not in none.meta
    assert ss.label_names == ["Teff", "logg"] and ss.label_units == ["K", "dex"]
    np.testing.assert_array_equal(ss.labels, np.arange(6.0).reshape(3, 2))
    assert ss.fingerprint() == make(label_units=["K", "dex"]).fingerprint()


def test_drop_unlabelled_and_weight_ivar():
    labels = np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0]])
    mask = np.ones((3, 5), bool)
    mask[0, 0] = False
    ss = make(labels=labels, mask=mask)
    assert ss.drop_unlabelled().ids.tolist() == ["s0", "s2"]
    assert ss.weight_ivar[0, 0] == 0 and ss.weight_ivar[0, 1] == 1


def test_fingerprint_changes_with_data():
    a, b = make(), make()
    assert a.fingerprint() == b.fingerprint()
    flux = np.ones((3, 5))
    flux[0, 0] = 1.0001
    assert make(flux=flux).fingerprint() != a.fingerprint()


def test_a_message_names_the_first_duplicate_ids_and_how_many_repeat():
    """Every repeated id is found, each once, sorted (one sort: the earlier check compared every
    id with every other, hours on a survey's million ids), and the message names the first five
    and how many there are."""
    ids = np.array([f"s{i:06d}" for i in range(200_000)])
    ids[[7, 9, 11, 13, 15, 17, 19]] = ids[[100, 101, 102, 103, 104, 100, 199_999]]
    np.testing.assert_array_equal(repeated(ids), ["s000100", "s000101", "s000102", "s000103", "s000104", "s199999"])
    with pytest.raises(DataError, match=r"duplicate star ids: 's000100', 's000101', 's000102', 's000103', "
                                        r"'s000104', \.\.\. \(6 in all\)$"):
        SpectralSet(wave=np.linspace(4000.0, 4100.0, 3), flux=np.ones((ids.size, 3)), ivar=np.ones((ids.size, 3)),
                    ids=ids)
    assert repeated(np.array([3, 1, 2])).size == 0
    assert name_some([]) == "" and name_some(["a", "b"], 2) == "a, b"
    assert name_some(range(4), 2) == "0, 1, ... (4 in all)"
    assert name_some(np.array(["0", "b"]), quoted=True) == "'0', 'b'"


def test_wavelength_errors_name_the_star_and_pixel_in_plain_numbers():
    """Found by a bad-input hunt: a per-star grid padded with NaN was 'the wavelength grid has
    non-finite values' (no star, no pixel), and a decreasing one printed numpy's reprs
    ('np.float64(5802.97) after np.float64(5806.16)')."""
    wave = np.tile(np.linspace(4000.0, 4010.0, 6), (3, 1))
    wave[1, 4:] = np.nan
    with pytest.raises(DataError, match=r"the wavelength grid of star 'b' has 2 value\(s\) that are not finite, the "
                                        r"first at pixel 4 \(nan\); a grid padded"):
        make(p=6, wave=wave, ids=["a", "b", "c"])
    with pytest.raises(DataError, match=r"must increase strictly \(pixel 2: 4002.0 after 4005.0\)$"):
        make(n=1, p=3, wave=np.array([4000.0, 4005.0, 4002.0]))

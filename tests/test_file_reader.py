"""FileReader: many files (directories, globs, lists), rejected files, labels joined by id."""
from pathlib import Path

import numpy as np
import pytest

from slamfw import DataError, FileReader, SpectralSet
from slamfw.data.files import expand_inputs, write_rejected


class TextReader(FileReader):
    """Test reader: ``<id>.spec`` files of 'wave flux' lines, vacuum."""

    patterns = ("*.spec",)
    medium = "vacuum"

    def read_file(self, path: Path) -> SpectralSet:
        try:
            data = np.loadtxt(path, ndmin=2)
        except ValueError as err:
            raise DataError(f"{path.name}: not a spectrum ({err})") from None
        if data.shape[0] < 2 or data.shape[1] != 2:
            raise DataError(f"{path.name}: expected two columns and at least two rows")
        return SpectralSet(wave=data[:, 0], flux=data[None, :, 1], ivar=np.ones((1, data.shape[0])),
                           ids=[path.name.split(".")[0]], source=path.name)


def _write(folder: Path, sid: str, start: float, n: int) -> Path:
    w = start + np.arange(n, dtype=float)
    path = folder / f"{sid}.spec"
    np.savetxt(path, np.column_stack([w, 1.0 + 0.01 * w]))
    return path


@pytest.fixture()
def survey(tmp_path):
    folder = tmp_path / "survey"
    folder.mkdir()
    for k, sid in enumerate(["s1", "s2", "s3", "s4"]):
        _write(folder, sid, 5000.0 + k, 20 + k)
    (folder / "broken.spec").write_text("this is not\na spectrum\n")
    (folder / "notes.txt").write_text("not matched by the pattern")
    return folder


def test_directory_glob_and_list_file(survey, tmp_path):
    by_dir = expand_inputs(str(survey), ("*.spec",))
    assert [p.name for p in by_dir] == ["broken.spec", "s1.spec", "s2.spec", "s3.spec", "s4.spec"]
    assert [p.name for p in expand_inputs(str(survey / "s[12].spec"), ("*.spec",))] == ["s1.spec", "s2.spec"]
    listing = tmp_path / "files.txt"
    listing.write_text("# my stars\nsurvey/s3.spec\n\n" + str(survey / "s1.spec") + "\n")
    assert [p.name for p in expand_inputs(str(listing), ("*.spec",))] == ["s3.spec", "s1.spec"]
    with pytest.raises(DataError, match="matches no file"):
        expand_inputs(str(survey / "*.fits"), ("*.spec",))
    with pytest.raises(DataError, match="does not exist"):
        expand_inputs(str(tmp_path / "nowhere"), ("*.spec",))
    with pytest.raises(DataError, match="no files matching"):
        expand_inputs(str(tmp_path), ("*.fits",))


def test_bad_file_is_rejected_and_the_rest_read(survey, tmp_path):
    reader = TextReader(path=str(survey))
    ss = reader.read()
    assert ss.ids.tolist() == ["s1", "s2", "s3", "s4"] and ss.per_star_grid and ss.medium == "vacuum"
    assert ss.wave.shape == (4, 23) and ss.star_wave(2)[0] == 5002.0
    assert len(reader.rejected_) == 1 and reader.rejected_[0][0].endswith("broken.spec")
    assert "not a spectrum" in reader.rejected_[0][1]
    out = write_rejected(reader, tmp_path / "rejected.csv", "train")
    text = out.read_text()
    assert "set,file,reason" in text and "broken.spec" in text and "train" in text
    # another set's clean read keeps this set's rows; a clean rerun of this set removes them (and the file)
    clean = TextReader(path=str(survey / "s1.spec"))
    clean.read()
    write_rejected(clean, out, "test")
    assert "broken.spec" in out.read_text()
    assert write_rejected(clean, out, "train") is None and not out.exists()


def test_every_file_failing_is_an_error(tmp_path):
    (tmp_path / "a.spec").write_text("garbage\n")
    (tmp_path / "b.spec").write_text("1 2 3\n")
    with pytest.raises(DataError, match="none of the 2 file.*could be read.*a.spec"):
        TextReader(path=str(tmp_path)).read()


def test_same_star_in_two_files_is_rejected(survey, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    _write(other, "s1", 6000.0, 10)
    listing = tmp_path / "list.lst"
    listing.write_text(f"{survey / 's1.spec'}\n{other / 's1.spec'}\n{survey / 's2.spec'}\n")
    reader = TextReader(path=str(listing))
    ss = reader.read()
    assert ss.ids.tolist() == ["s1", "s2"] and ss.star_wave(0)[0] == 5000.0
    assert "already read from s1.spec" in reader.rejected_[0][1]


def test_chunks_equal_the_whole(survey):
    reader = TextReader(path=str(survey))
    whole = reader.read()
    parts = list(TextReader(path=str(survey)).iter_chunks(3))
    assert [p.n_stars for p in parts] == [2, 2]            # files are read 3 at a time (one is broken)
    joined = SpectralSet.stack(parts)
    assert joined.ids.tolist() == whole.ids.tolist()
    for i in range(whole.n_stars):
        n = whole.n_pixels - int((~whole.mask[i]).sum())
        np.testing.assert_array_equal(joined.flux[i][:n], whole.flux[i][:n])


def test_labels_joined_by_id_with_missing_values(survey, tmp_path):
    cat = tmp_path / "labels.csv"
    cat.write_text("obsid,teff,logg,comment\ns2,5100,-9999,x\ns1,4800,2.5,y\nzz,6000,4.0,z\n")
    reader = TextReader(path=str(survey), labels=str(cat), labels_id="obsid",
                        labels_columns={"Teff": "teff", "logg": "logg"})
    ss = reader.read()
    assert ss.label_names == ["Teff", "logg"] and ss.label_units == ["K", "dex"]
    np.testing.assert_array_equal(ss.labels[0], [4800.0, 2.5])           # order of the spectra, not the table
    assert ss.labels[1, 0] == 5100.0 and np.isnan(ss.labels[1, 1])        # -9999 -> NaN
    assert np.isnan(ss.labels[2:]).all()                                  # not in the catalogue
    with pytest.raises(DataError, match="no column 'feh'"):
        TextReader(path=str(survey), labels=str(cat), labels_id="obsid", labels_columns={"FeH": "feh"}).read()
    with pytest.raises(DataError, match="no id column 'id'"):
        TextReader(path=str(survey), labels=str(cat)).read()
    dup = tmp_path / "dup.csv"
    dup.write_text("id,teff\ns1,1\ns1,2\n")
    with pytest.raises(DataError, match="ids repeat"):
        TextReader(path=str(survey), labels=str(dup)).read()

"""FileReader: many files (directories, globs, lists), rejected files, labels joined by id."""
from pathlib import Path

import numpy as np
import pytest

from slamfw import DataError, FileReader, SpectralSet
from slamfw.data.files import expand_inputs, read_labels_catalogue, write_rejected


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


def test_a_catalogues_empty_cells_floats_ids_and_infinities(tmp_path, caplog):
    """An empty cell of an integer column is a missing label (it was an internal error: astropy
    cannot fill an integer column with NaN); an id column written as floats (938505172.0) gives
    the stars' ids (none matched); a row without an id is left out, with a warning naming it; an
    infinite label is refused naming the catalogue and the star (it was refused later, naming the
    spectra's folder)."""
    cat = tmp_path / "cat.csv"
    cat.write_text("obsid,teff,logg\n938505172.0,6903,4.29\n938509188.0,,4.23\n,5000,4.0\n12.0,5100,4.1\n")
    with caplog.at_level("WARNING"):
        t = read_labels_catalogue(str(cat), "obsid", {"Teff": "teff", "logg": "logg"}, [-9999.0])
    assert t["id"].tolist() == ["938505172", "938509188", "12"]
    np.testing.assert_array_equal(t["Teff"], [6903.0, np.nan, 5100.0])
    assert "1 row(s) of the label catalogue" in caplog.text and "(row(s) 2, counted from 0)" in caplog.text
    cat.write_text("obsid,teff,logg\na,6903,inf\nb,5000,4.0\n")
    with pytest.raises(DataError, match=r"column 'logg' of the label catalogue '.*cat.csv' is infinite for star\(s\) "
                                        r"a; leave a missing value empty"):
        read_labels_catalogue(str(cat), "obsid", {}, [-9999.0])


@pytest.fixture()
def repeating(survey, tmp_path):
    """The survey listed with, after three of its files, a copy of s1 from another folder (on
    another grid), and a file of a new star, s9, with labels in a catalogue."""
    other = tmp_path / "other"
    other.mkdir()
    _write(other, "s1", 6000.0, 10)
    _write(other, "s9", 5500.0, 30)
    listing = tmp_path / "list.lst"
    names = ["s1", "broken", "s2", "s3", "s4"]
    listing.write_text("\n".join([*(str(survey / f"{n}.spec") for n in names[:3]), str(other / "s1.spec"),
                                  *(str(survey / f"{n}.spec") for n in names[3:]), str(other / "s9.spec")]) + "\n")
    cat = tmp_path / "labels.csv"
    cat.write_text("id,teff\ns9,5100\ns2,4800\n")
    return {"path": str(listing), "labels": str(cat)}


def test_described_groups_of_files_read_like_iter_chunks(repeating):
    """chunk_sources: picklable groups of files (absolute paths), each read where it runs; the
    calling process's chunk_read rejects a file whose star an earlier group gave and leaves its
    star out; the stars, labels and rejected files are those of iter_chunks; the kit agrees."""
    import pickle

    from slamfw.components.file_reader import FileChunk
    from slamfw.testing import check_reader
    here = TextReader(**repeating)
    parts = list(here.iter_chunks(3))
    reader = TextReader(**repeating)
    sources = list(reader.chunk_sources(3))
    assert all(isinstance(s, FileChunk) for s in sources) and [s.n_stars for s in sources] == [3, 3, 1]
    assert all(Path(p).is_absolute() for s in sources for p in s.paths)
    assert len(pickle.dumps(sources[0])) < 2000
    got, left_out = [], []
    for src in sources:
        src = pickle.loads(pickle.dumps(src))
        ss = src.read()
        back = pickle.loads(pickle.dumps(src))          # as a worker returns it
        left_out.append(list(reader.chunk_read(back)))
        got.append(ss)
    reader.chunks_read()
    assert [g.ids.tolist() for g in got] == [["s1", "s2"], ["s1", "s3", "s4"], ["s9"]]
    assert left_out == [[], ["s1"], []]
    assert [p.ids.tolist() for p in parts] == [["s1", "s2"], ["s3", "s4"], ["s9"]]
    assert reader.rejected_ == here.rejected_ and [Path(p).name for p, _ in reader.rejected_] == [
        "broken.spec", "s1.spec"]
    assert got[2].labels[0, 0] == 5100.0 and got[0].labels[1, 0] == 4800.0 and np.isnan(got[0].labels[0, 0])
    check_reader(TextReader, repeating)


class KeepsRepeats(TextReader):
    """Leaves no star out: a star that two groups' files hold is given twice."""

    def chunk_read(self, source):
        super().chunk_read(source)
        return []


class LeavesOutTheFirst(TextReader):
    """Leaves out the first star of every group, whether or not it was read before."""

    def chunk_read(self, source):
        super().chunk_read(source)
        return [ids[0] for _, ids, _ in source.outcome_ if ids][:1]


@pytest.mark.parametrize("cls,message", [
    (KeepsRepeats, "chunk 1's read() gives other pixels than iter_chunks' piece 2"),   # s1 again, not s3
    (LeavesOutTheFirst, "chunk_read leaves out stars ['s1'] that no earlier chunk gave"),
])
def test_reader_kit_catches_chunk_read_that_keeps_or_drops_the_wrong_stars(repeating, cls, message):
    from slamfw.testing import check_reader
    results = {r.check: r for r in check_reader(cls, repeating, raise_on_fail=False)}
    assert [c for c, r in results.items() if not r.passed] == ["check_chunk_sources"]
    assert results["check_chunk_sources"].message == f"chunk_sources(2): {message}"    # groups of 2 files


def test_described_files_none_readable(tmp_path):
    (tmp_path / "a.spec").write_text("x\n")
    reader = TextReader(path=str(tmp_path))
    for src in reader.chunk_sources(5):
        assert src.read().n_stars == 0
        assert reader.chunk_read(src) == []
    with pytest.raises(DataError, match=r"none of the 1 file\(s\).*a.spec: not a spectrum"):
        reader.chunks_read()


class NpzStars(FileReader):
    """Test reader: ``*.npz`` files of one or more stars (``ids``), flat spectra of 10 pixels."""

    patterns = ("*.npz",)
    medium = "vacuum"

    def read_file(self, path: Path) -> SpectralSet:
        with np.load(path) as z:
            ids = [str(i) for i in z["ids"]]
        return SpectralSet(wave=np.arange(5000.0, 5010.0), flux=np.ones((len(ids), 10)), ivar=np.ones((len(ids), 10)),
                           ids=ids, source=path.name)


def test_described_files_overlapping_in_three_files_is_said(tmp_path):
    """Files of several stars: a0 {w}, a1 {x} | b {x, y}, c {y} in groups of two. Reading every
    file here rejects b (x again) and keeps c; a worker reading b and c rejects c (y of b), and the
    calling process then rejects b: c's star is lost, which its rejection says."""
    for name, ids in (("a0", ["w"]), ("a1", ["x"]), ("b", ["x", "y"]), ("c", ["y"])):
        np.savez(tmp_path / f"{name}.npz", ids=np.array(ids))
    here = NpzStars(path=str(tmp_path))
    assert [p.ids.tolist() for p in here.iter_chunks(2)] == [["w", "x"], ["y"]]
    reader = NpzStars(path=str(tmp_path))
    got, left_out = [], []
    for src in reader.chunk_sources(2):
        got.append(src.read().ids.tolist())
        left_out.append(reader.chunk_read(src))
    reader.chunks_read()
    assert got == [["w", "x"], ["x", "y"]] and left_out == [[], ["x", "y"]]
    assert [Path(p).name for p, _ in here.rejected_] == ["b.npz"]
    reasons = dict((Path(p).name, r) for p, r in reader.rejected_)
    assert reasons["b.npz"] == "star 'x' was already read from a1.npz"
    assert reasons["c.npz"].startswith("star 'y' was already read from b.npz, itself rejected for a star of an earlier")
    assert "this file's stars are not in the catalogue" in reasons["c.npz"]


def test_described_groups_read_the_label_catalogue_once_per_process(repeating, monkeypatch):
    """The calling process checks the catalogue before any work; each process reading groups
    reads it once, and again when the file changes."""
    from slamfw.components import file_reader
    calls = []
    read_catalogue = TextReader._catalogue
    monkeypatch.setattr(TextReader, "_catalogue", lambda self: calls.append(1) or read_catalogue(self))
    file_reader._CATALOGUES.clear()
    sources = list(TextReader(**repeating).chunk_sources(2))
    assert len(calls) == 1                                         # the calling process's check
    labels = [src.read().labels for src in sources]
    assert len(calls) == 2 and labels[-1][0, 0] == 5100.0           # s9, in the last group
    Path(repeating["labels"]).write_text("id,teff\ns9,5222\n")
    assert sources[-1].read().labels[0, 0] == 5222.0 and len(calls) == 3
    assert sources[0].read().labels is not None and len(calls) == 3


def test_described_groups_with_a_missing_catalogue(repeating):
    missing = str(Path(repeating["labels"]).with_name("nowhere.csv"))
    with pytest.raises(DataError, match="nowhere.csv"):
        TextReader(**{**repeating, "labels": missing}).chunk_sources(2)
    sources = list(TextReader(**repeating).chunk_sources(2))
    Path(repeating["labels"]).unlink()                            # gone before a worker reads it
    with pytest.raises(DataError, match="labels.csv"):
        sources[0].read()


def test_reader_kit_takes_a_group_of_files_as_several_pieces(tmp_path):
    """A file of three stars read in chunks of one star: its description stands for three
    pieces, and the kit checks each against iter_chunks'."""
    from slamfw.testing import check_reader
    for name, ids in (("a", ["w"]), ("b", ["x", "y", "z"])):
        np.savez(tmp_path / f"{name}.npz", ids=np.array(ids))
    reader = NpzStars(path=str(tmp_path))
    assert [s.read().n_stars for s in reader.chunk_sources(1)] == [1, 3]
    assert [p.n_stars for p in NpzStars(path=str(tmp_path)).iter_chunks(1)] == [1, 1, 1, 1]
    results = {r.check: r for r in check_reader(NpzStars, {"path": str(tmp_path)})}
    assert results["check_chunk_sources"].passed and results["check_chunk_sources"].message == ""

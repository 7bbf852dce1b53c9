import gzip
import os

import numpy as np
import pytest
from PIL import Image

from forgeml.config import DataConfig
from forgeml.data.sources import detect_source, read_source
from forgeml.data.sources.arrays import read_idx
from forgeml.data.sources.images import read_image
from forgeml.errors import ConfigError, DataError

MNIST = "data/mnist/t10k-images-idx3-ubyte.gz"
LABELS = "data/mnist/t10k-labels-idx1-ubyte.gz"


def test_idx_gzipped_and_plain_give_the_real_mnist(tmp_path):
    images = read_idx(MNIST)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    labels = read_idx(LABELS)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # SOURCE.md
    plain = tmp_path / "labels-idx1-ubyte"
    plain.write_bytes(gzip.open(LABELS).read())
    assert np.array_equal(read_idx(plain), labels)


def test_idx_truncated_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x-idx1-ubyte"
    bad.write_bytes(gzip.open(LABELS).read()[:100])
    with pytest.raises(DataError, match="truncated"):
        read_idx(bad)
    junk = tmp_path / "y-idx1-ubyte"
    junk.write_bytes(b"hello world")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(junk)


def test_idx_source_pairs_images_and_labels():
    cols = read_source(DataConfig(path=MNIST, labels_path=LABELS))
    assert cols.data["image"].shape == (10000, 1, 28, 28)
    assert cols.data["label"][:3].tolist() == [7, 2, 1]
    with pytest.raises(ConfigError, match="labels_path"):
        read_source(DataConfig(path=MNIST))


def test_csv_with_header_separator_and_missing_markers():
    cols = read_source(DataConfig(path="data/wine_quality/winequality-red.csv", sep=";"))
    assert len(cols) == 1599 and "quality" in cols.names and cols.data["alcohol"].dtype == np.float64


def test_headerless_csv_with_comment_and_na_values():
    cfg = DataConfig(path="data/adult/adult.test.gz", columns=[f"c{i}" for i in range(15)], na_values=["?"], comment="|")
    cols = read_source(cfg)
    assert len(cols) == 16281
    assert cols.data["c1"][0] == "Private"  # leading space stripped
    assert any(v != v for v in cols.data["c1"] if isinstance(v, float))  # '?' became missing


def test_parquet_jsonl_tsv_and_npz(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"], "label": [0, 1, 0]})
    df.to_parquet(tmp_path / "t.parquet")
    df.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    for name in ("t.parquet", "t.jsonl", "t.tsv"):
        cols = read_source(DataConfig(path=str(tmp_path / name)))
        assert cols.data["b"].tolist() == ["x", "y", "x"], name
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4))
    cols = read_source(DataConfig(path=str(tmp_path / "a.npz")))
    assert cols.data["image"].shape == (4, 1, 8, 8)
    with pytest.raises(DataError, match="x_key"):
        read_source(DataConfig(path=str(tmp_path / "a.npz"), x_key="images"))


def test_image_folder_and_an_image_that_will_not_decode(tmp_path):
    images = read_idx(MNIST)[:6]
    for i, im in enumerate(images):
        d = tmp_path / ("even" if i % 2 == 0 else "odd")
        d.mkdir(exist_ok=True)
        Image.fromarray(im).save(d / f"{i}.png")
    cols = read_source(DataConfig(path=str(tmp_path)))
    assert cols.data["image"].shape == (6, 1, 28, 28)
    assert sorted(set(cols.data["label"])) == ["even", "odd"]
    assert np.array_equal(cols.data["image"][0, 0], images[0])  # PNG is lossless
    (tmp_path / "odd" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png: cannot decode"):
        read_source(DataConfig(path=str(tmp_path)))


def test_sklearn_sets_and_misspelt_names():
    cols = read_source(DataConfig(source="sklearn", path="digits"))
    assert cols.data["image"].shape == (1797, 1, 8, 8)
    iris = read_source(DataConfig(path="sklearn:iris"))
    assert set(iris.data["target"]) == {"setosa", "versicolor", "virginica"}
    with pytest.raises(ConfigError, match="did you mean digits"):
        read_source(DataConfig(source="sklearn", path="digit"))


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_source(DataConfig(path="data/nope.csv"))
    odd = tmp_path / "x.weird"
    odd.write_text("1")
    with pytest.raises(ConfigError, match="set data.source"):
        detect_source(str(odd))


def test_unparseable_csv_rows(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,0\n3,4,5,6,7\n")
    with pytest.raises(DataError, match="cannot parse as csv"):
        read_source(DataConfig(path=str(bad)))


def test_sklearn_source_and_file_paths_name_data_source(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,label\n1,x\n2,y\n")
    with pytest.raises(ConfigError, match="data.source: sklearn.*is a file.*set data.source: auto"):
        read_source(DataConfig(source="sklearn", path=str(table)))
    with pytest.raises(ConfigError, match="data.path: sklearn:.*is a file.*data.source"):
        read_source(DataConfig(path=f"sklearn:{table}"))
    for source in ("csv", "auto"):
        with pytest.raises(ConfigError, match="'iris' is a scikit-learn set.*data.source: sklearn"):
            read_source(DataConfig(source=source, path="iris"))


def test_header_false_reads_the_first_line_as_data(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("1,x\n2,y\n3,x\n")
    assert read_source(DataConfig(path=str(table))).names == ["1", "x"]
    cols = read_source(DataConfig(path=str(table), header=False))
    assert cols.names == ["col_0", "col_1"] and cols.data["col_0"].tolist() == [1.0, 2.0, 3.0]
    named = read_source(DataConfig(path=str(table), header=False, columns=["a", "label"]))
    assert named.data["label"].tolist() == ["x", "y", "x"]
    renamed = read_source(DataConfig(path=str(table), header=True, columns=["a", "label"]))  # the header row is replaced
    assert renamed.data["a"].tolist() == [2.0, 3.0]
    pd = pytest.importorskip("pandas")
    pd.DataFrame({"a": [1]}).to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    with pytest.raises(ConfigError, match="data.header: jsonl files name their own columns"):
        read_source(DataConfig(path=str(tmp_path / "t.jsonl"), header=False))


def test_a_stray_quote_that_swallows_rows_is_an_error_naming_quote_char():
    # the real SMS file: a message on line 5082 opens with '"' and the default quoting reads 3 lines as one
    cfg = DataConfig(path="data/sms_spam/SMSSpamCollection", source="tsv", columns=["label", "text"])
    with pytest.raises(DataError, match=r"read 5572 records from 5574 lines.*line 5082.*data.quote_char: null"):
        read_source(cfg)
    cols = read_source(cfg.model_copy(update={"quote_char": None}))
    assert len(cols) == 5574 and cols.rows[-1] == 5574


def test_stray_quote_in_a_gzipped_file_and_a_real_multiline_value(tmp_path):
    rows = ["ham\tsee you at 5", 'spam\t"FREE entry! win now', "ham\tok lar", "ham\tcall me", 'spam\tclaim your prize" now']
    bad = tmp_path / "sms.tsv.gz"
    with gzip.open(bad, "wt") as f:
        f.write("label\ttext\n" + "\n".join(rows * 3) + "\n")
    with pytest.raises(DataError, match=r"read 6 records from 15 lines.*line 3 opens.*data.quote_char: null"):
        read_source(DataConfig(path=str(bad)))
    assert len(read_source(DataConfig(path=str(bad), quote_char=None))) == 15
    good = tmp_path / "reviews.csv"  # a quoted review over two lines is one record, not an error
    good.write_text('rating,text\n5,"Love this dress!\n\nIt fits."\n\n# a comment\n2,too small\n')
    cols = read_source(DataConfig(path=str(good), comment="#"))
    assert cols.data["rating"].tolist() == [5.0, 2.0] and cols.rows.tolist() == [2, 7]


def test_a_wrong_separator_names_the_one_the_file_looks_like(tmp_path):
    semi = tmp_path / "wine.csv"
    semi.write_text("".join(open("data/wine_quality/winequality-red.csv").readlines()[:30]))  # real ';' file
    with pytest.raises(DataError, match=r"one column 'fixed acidity;.*looks ';'-separated: set data.sep: ';'"):
        read_source(DataConfig(path=str(semi)))
    assert "quality" in read_source(DataConfig(path=str(semi), sep=";")).names
    tabs = tmp_path / "t.csv"
    tabs.write_text("a\tb\tlabel\n1\t2\tx\n3\t4\ty\n5,6\t7\tx\n")
    with pytest.raises(DataError, match=r"looks '\\t'-separated: set data.sep: '\\t'"):
        read_source(DataConfig(path=str(tabs)))


def test_an_image_file_is_decoded_only_as_an_image_format(tmp_path, monkeypatch):
    """A .png that is really PostScript must not reach Ghostscript (a program Pillow runs for EPS)."""
    from PIL import EpsImagePlugin

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "ran"
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # look for gs again, on this PATH
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n")
    with pytest.raises(DataError, match="fake.png: cannot decode as an image"):
        read_image(fake, (8, 8), 1)
    assert not marker.exists()


def test_record_lines_are_counted_in_chunks_as_a_loop_over_lines_counts_them():
    import io
    import random

    from forgeml.data.sources.tables import record_lines_in

    def loop(data, blank, mark):
        return [n for n, line in enumerate(io.BytesIO(data), 1) if line.strip(blank) and not (mark and line.startswith(mark))]

    rng = random.Random(0)
    pieces = [b"a,1", b"", b"  ", b"\t", b"# note", b" #x", b"\r", b"bb,\t2", b"#"]
    for _trial in range(200):
        data = b"\n".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) + rng.choice([b"", b"\n", b"\r\n"])
        for blank, mark in ((b" \t\r\n\f\v", None), (b" \r\n\f\v", b"#")):  # a TSV: a line of tabs is a record
            for chunk in (1, 2, 3, 7, 1 << 22):  # lines cut at every place a chunk can end
                got = record_lines_in(io.BytesIO(data), blank, mark, chunk=chunk).tolist()
                assert got == loop(data, blank, mark), (data, blank, mark, chunk)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through Linux's /proc")
def test_a_zipped_table_leaves_no_file_open(tmp_path):
    import zipfile

    from forgeml.data.sources.tables import _open

    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("t.csv", "a,y\n1,2\n")
    fds = len(os.listdir("/proc/self/fd"))
    member = _open(str(path))
    assert member.read() == b"a,y\n1,2\n"
    member.close()
    assert len(os.listdir("/proc/self/fd")) == fds  # the archive too, not only when it is garbage-collected


def test_a_zipped_or_bz2_csv_is_read_as_a_csv_without_data_source(tmp_path):
    """Kaggle ships tables as name.csv.zip: the name alone says CSV, and a quoted value over two lines keeps
    the file's line numbers right through the archive."""
    import bz2
    import zipfile

    text = 'id,review,label\n1,"fits well\nand soft",1\n2,too small,0\n'
    zipped, bz = tmp_path / "reviews.csv.zip", tmp_path / "reviews.csv.bz2"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("reviews.csv", text)
    bz.write_bytes(bz2.compress(text.encode()))
    for path in (zipped, bz):
        assert detect_source(str(path)) == "csv"
        cols = read_source(DataConfig(path=str(path)))
        assert cols.data["review"].tolist() == ["fits well\nand soft", "too small"]
        assert cols.data["label"].tolist() == [1.0, 0.0]
        assert cols.where(1) == "line 4"  # the second record starts on line 4: the first took lines 2-3
    odd = tmp_path / "arrays.npz.zip"  # the array readers do not open archives: still refused by name
    odd.write_bytes(b"")
    with pytest.raises(ConfigError, match="set data.source"):
        detect_source(str(odd))

"""Convert UCI's Anonymous Microsoft Web Data (msweb) from its A/C/V line format into plain CSV tables.

    python data/msweb/convert.py [SOURCE_FOLDER]     # default ../shared/data/msweb

Writes, beside this script:
  msweb-train.csv.gz  user,item,order   one row per V line of anonymous-msweb.data: the user (C line's case id) visited
                                        the area (Vroot id); order = the visit's place among that user's V lines (0, 1, ...)
  msweb-test.csv.gz   user,item,order   the same for anonymous-msweb.test; its case ids are a SEPARATE numbering (test
                                        user 10001 is not train user 10001), so they are written as t10001, t10002, ...:
                                        the two files can never be joined on the id by mistake
  items.csv           item,title,url    the 294 areas (A lines of the .data file)

The V lines are read in file order; nothing is dropped or reordered (the source has no duplicates, no empty users).
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read_dst(path: Path, prefix: str = "") -> tuple[list[tuple[str, str, int]], list[tuple[str, str, str]]]:
    """(user, item, order) per visit and (item, title, url) per area of one DST file."""
    visits, areas, user, order = [], [], None, 0
    with open(path, newline="", encoding="latin-1") as fh:
        for row in csv.reader(fh):
            if not row:
                continue
            if row[0] == "A":
                areas.append((row[1], row[3], row[4]))
            elif row[0] == "C":
                user, order = prefix + row[2], 0
            elif row[0] == "V":
                if user is None:
                    raise SystemExit(f"{path}: a V line before any C line")
                visits.append((user, row[1], order))
                order += 1
    return visits, areas


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    tmp = path.with_name(path.name + ".tmp")
    # mtime=0: the same input gives the same bytes
    fh = gzip.GzipFile(tmp, "wb", mtime=0) if opener is gzip.open else open(tmp, "wb")
    with fh:
        text = [",".join(header)] + [",".join(_field(v) for v in row) for row in rows]
        fh.write(("\n".join(text) + "\n").encode("utf-8"))
    tmp.replace(path)


def _field(v) -> str:
    s = str(v)
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s


def main(source: Path) -> None:
    train, areas = read_dst(source / "anonymous-msweb.data")
    test, _ = read_dst(source / "anonymous-msweb.test", prefix="t")
    write_csv(HERE / "msweb-train.csv.gz", ["user", "item", "order"], train)
    write_csv(HERE / "msweb-test.csv.gz", ["user", "item", "order"], test)
    write_csv(HERE / "items.csv", ["item", "title", "url"], sorted(areas, key=lambda a: int(a[0])))
    print(f"train: {len(train):,} visits of {len({v[0] for v in train}):,} users; test: {len(test):,} visits of "
          f"{len({v[0] for v in test}):,} users; {len(areas)} areas")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data" / "msweb")

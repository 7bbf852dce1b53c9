"""Write the tables the spoken-digits examples, tests and benchmarks read (run from the repository root):

    python data/spoken_digits/make_tables.py

- fsdd_train.csv / fsdd_test.csv: all 3,000 clips of ../shared/data/spoken_digits/recordings, split the usual
  way (recordings 0-4 of each speaker and digit are the test set, 5-49 training), paths relative to this folder.
- small_train.csv / small_test.csv: the 60 clips copied into clips/ (speakers jackson and theo, every digit,
  recordings 0 for test, 5 and 6 for training), for tests that must run from a fresh clone.

Columns: path, label (the digit), speaker, index. File names are DIGIT_SPEAKER_INDEX.wav.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data" / "spoken_digits" / "recordings"  # ../shared from the repository root
SMALL_SPEAKERS, SMALL_TRAIN, SMALL_TEST = ("jackson", "theo"), (5, 6), (0,)


def parse(name: str) -> tuple[str, str, int]:
    digit, speaker, index = Path(name).stem.split("_")
    return digit, speaker, int(index)


def write(path: Path, rows: list[tuple[str, str, str, int]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "label", "speaker", "index"])
        w.writerows(sorted(rows, key=lambda r: (r[2], int(r[1]), r[3])))


def main() -> None:
    files = sorted(p.name for p in SHARED.glob("*.wav"))
    rel = os.path.relpath(SHARED, HERE)
    rows = [(f"{rel}/{name}", *parse(name)) for name in files]
    write(HERE / "fsdd_train.csv", [r for r in rows if r[3] >= 5])
    write(HERE / "fsdd_test.csv", [r for r in rows if r[3] < 5])
    small = [(name, *parse(name)) for name in files if parse(name)[1] in SMALL_SPEAKERS and parse(name)[2] in SMALL_TRAIN + SMALL_TEST]
    (HERE / "clips").mkdir(exist_ok=True)
    for name, *_ in small:
        shutil.copyfile(SHARED / name, HERE / "clips" / name)
    write(HERE / "small_train.csv", [(f"clips/{n}", d, s, i) for n, d, s, i in small if i in SMALL_TRAIN])
    write(HERE / "small_test.csv", [(f"clips/{n}", d, s, i) for n, d, s, i in small if i in SMALL_TEST])
    print(f"{len(rows)} clips in fsdd_*.csv, {len(small)} copied into clips/")


if __name__ == "__main__":
    main()

"""Training benchmarks for both systems.

    python benchmarks/train.py echo     # EchoQuality: training clips/s with and without the clip cache
    python benchmarks/train.py lookup   # lookup framework: cases/s for 1, 2, 4 workers; optimize trials/s
    python benchmarks/train.py          # both

Extra arguments after the system name are passed to that benchmark
(see benchmarks/echo_train.py and benchmarks/lookup_train.py).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {"echo": HERE / "echo_train.py", "lookup": HERE / "lookup_train.py"}


def main(argv: list[str]) -> None:
    systems = [argv[0]] if argv and argv[0] in SCRIPTS else list(SCRIPTS)
    rest = argv[1:] if argv and argv[0] in SCRIPTS else argv
    for name in systems:
        print(f"=== {name} training benchmark ({SCRIPTS[name].name}) ===", flush=True)
        sys.argv = [str(SCRIPTS[name]), *rest]
        runpy.run_path(str(SCRIPTS[name]), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The relay under `python -m sserelay.bench.compare ... --calls`: every Python function it
enters and every C function it calls, counted while the load runs.

    python .../sserelay/bench/calls.py OUT -- PYTHON -m MODULE ARGS...

runs MODULE (`sserelay.cli serve ...`) in this process, as `PYTHON -m` would. SIGUSR1
switches the counting on for the main thread (where the event loop runs) and writes
`OUT.on` once it has; SIGUSR2 switches it off and writes the counts to OUT as JSON:
`{"python": [[file, line, name, n], ...], "c": [[name, n], ...]}`. A Python entry is a
frame entered, a coroutine's or a generator's resumption included (what the profiler hook
sees, and what the interpreter pays a frame's set-up for).

It is started as a script, not with -m, so that it is this checkout's even when the relay's
PYTHONPATH points at another tree (`--against`). Counts are exact where CPU time is not: two
runs of the same load differ by the few calls a reused or a new connection makes, not by the
machine's speed (docs/decisions.md, "A sixth full run").
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

_USAGE = "usage: calls.py OUT -- PYTHON -m MODULE [ARGS...]"


class _Counts:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.frames: dict[CodeType, int] = {}
        self.c_calls: dict[str, int] = {}

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            self.frames[code] = self.frames.get(code, 0) + 1
        elif event == "c_call":
            # By name: a bound method (`items.append`) is a new object at every call.
            module = getattr(arg, "__module__", None)
            name = getattr(arg, "__qualname__", None) or repr(arg)
            key = f"{module}.{name}" if module and module != "builtins" else name
            self.c_calls[key] = self.c_calls.get(key, 0) + 1

    def on(self, *_: object) -> None:
        self.frames.clear()
        self.c_calls.clear()
        sys.setprofile(self.hook)
        _write(self.out.with_name(self.out.name + ".on"), "")

    def off(self, *_: object) -> None:
        sys.setprofile(None)
        python = [[code.co_filename, code.co_firstlineno, code.co_name, n]
                  for code, n in self.frames.items()]  # fmt: skip
        c = [[name, n] for name, n in self.c_calls.items()]
        _write(self.out, json.dumps({"python": python, "c": c}))


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)  # whole or not at all for the reader polling for it


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[1] != "--" or argv[3] != "-m":
        print(_USAGE, file=sys.stderr)
        return 2
    out, module, args = Path(argv[0]), argv[4], argv[5:]
    here = str(Path(__file__).resolve().parent)
    if sys.path and sys.path[0] and str(Path(sys.path[0]).resolve()) == here:
        del sys.path[0]  # the script's folder: its modules are not top-level ones
    counts = _Counts(out)
    signal.signal(signal.SIGUSR1, counts.on)
    signal.signal(signal.SIGUSR2, counts.off)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

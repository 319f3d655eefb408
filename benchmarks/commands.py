"""Wall time of the project's commands: build-contract, verify-contract and the test suite.

Each runs as its own process (``python -m converters.cli`` etc., what the console scripts
call), from the repository root, so interpreter start and imports count as a user sees them.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: "personality_v1 [2/10] coreml-fp32 → personality_v1.fp32.mlpackage (2.9 s)"
STEP = re.compile(
    r"^(?P<bundle>\S+) \[(?P<index>\d+)/(?P<total>\d+)\] (?P<label>.+) \((?P<seconds>[\d.]+) s\)$"
)
#: "encoder_v1 reference on 80 golden rows (11.4 s)", one line per model (earlier builds printed
#: "reference encoder on 80 golden texts (17.6 s)" once)
REFERENCE = re.compile(
    r"^(?:reference encoder|\S+ reference) on \d+ golden (?:texts|rows) \((?P<seconds>[\d.]+) s\)$"
)
DONE = re.compile(r"^done in (?P<seconds>[\d.]+) s$")
#: pytest -q's last line, e.g. "206 passed, 3 skipped in 334.12s (0:05:34)"
PYTEST = re.compile(r"^=*\s*(?P<summary>\d+ (passed|failed|error).*?) in (?P<seconds>[\d.]+)s")


class CommandFailed(RuntimeError):
    pass


def _run(args: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def parse_build_log(text: str) -> dict[str, object]:
    """Steps (bundle, step key, seconds), the shared reference-encoder time and build_bundles' total."""
    steps, shared, total = [], None, None
    for line in text.splitlines():
        line = line.strip()
        if match := STEP.match(line):
            label = match["label"]
            steps.append(
                {"bundle": match["bundle"], "step": label.split(" → ")[0], "seconds": float(match["seconds"])}
            )
        elif match := REFERENCE.match(line):
            shared = (shared or 0.0) + float(match["seconds"])
        elif match := DONE.match(line):
            total = float(match["seconds"])
    return {"steps": steps, "reference_s": shared, "done_s": total}


def time_build(artifacts: Path, repeats: int = 1) -> dict[str, object]:
    """``build-contract ARTIFACTS`` ``repeats`` times: process wall time and each step's time, medians."""
    walls, logs = [], []
    for _ in range(repeats):
        wall, done = _run([sys.executable, "-m", "converters.cli", str(artifacts)])
        if done.returncode != 0:
            raise CommandFailed(f"build-contract exited {done.returncode}:\n{done.stderr[-2000:]}")
        walls.append(wall)
        logs.append(parse_build_log(done.stderr))
    steps: dict[tuple[str, str], list[float]] = {}
    for log in logs:
        for step in log["steps"]:
            steps.setdefault((step["bundle"], step["step"]), []).append(step["seconds"])
    per_step = [{"bundle": b, "step": s, "seconds": statistics.median(t)} for (b, s), t in steps.items()]
    per_bundle: dict[str, float] = {}
    for step in per_step:
        per_bundle[step["bundle"]] = per_bundle.get(step["bundle"], 0.0) + step["seconds"]
    return {
        "repeats": repeats,
        "wall_s": statistics.median(walls),
        "walls_s": walls,
        "done_s": statistics.median(log["done_s"] for log in logs if log["done_s"] is not None),
        "reference_s": statistics.median(
            log["reference_s"] for log in logs if log["reference_s"] is not None
        ),
        "per_step": per_step,
        "per_bundle": per_bundle,
    }


def time_verify(artifacts: Path, repeats: int = 1) -> dict[str, object]:
    """``verify-contract ARTIFACTS`` (both bundles, every check): process wall time, median; its
    exit code and summary line (a failing verification is timed and reported, not hidden)."""
    walls, summary, exit_code = [], "", 0
    for _ in range(repeats):
        wall, done = _run([sys.executable, "-m", "verify.cli", str(artifacts), "--quiet"])
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        summary = lines[-1].strip() if lines else done.stderr.strip()[-300:]
        exit_code = max(exit_code, done.returncode)
        walls.append(wall)
    return {
        "repeats": repeats,
        "wall_s": statistics.median(walls),
        "walls_s": walls,
        "summary": summary,
        "exit": exit_code,
    }


def time_tests() -> dict[str, object]:
    """``pytest -q`` once (it builds the default bundles itself): wall time and its summary line."""
    wall, done = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"])
    summary = ""
    for line in reversed(done.stdout.splitlines()):
        if match := PYTEST.match(line.strip()):
            summary = match["summary"]
            break
    return {"wall_s": wall, "summary": summary or f"exit {done.returncode}", "exit": done.returncode}

"""The corpus audit on a real local Ray cluster (``ray.init(num_cpus=2)``) against the local engine,
on the real default bundles: the same report, a killed actor survived, memory bounded while a large
Parquet corpus streams through. Skipped when Ray (``pip install 'coreml-contract[scale]'``) is absent."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from benchmarks.corpus import corpus_texts
from tests.helpers import run_verify

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow
ONLY = "onnx-fp16"  # the cheapest variant on CPU: the audit then runs 3 sessions, not 4+
TEXTS = 5000
KNN = "128"  # corpus-wide kNN queries: enough to compare the engines' neighbours exactly
TIMING = {"texts_per_second", "reference_texts_per_second"}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """5,000 short real texts (first four words of package prose), as .txt and as .parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [" ".join(t.split()[:4]) for t in corpus_texts(TEXTS, set())]
    assert len(texts) == TEXTS
    root = tmp_path_factory.mktemp("ray-corpus")
    (root / "texts.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    pq.write_table(pa.table({"body": texts}), root / "texts.parquet", row_group_size=700)
    return {"txt": root / "texts.txt", "parquet": root / "texts.parquet"}


def _audit_checks(report: Path) -> dict[str, dict]:
    bundles = json.loads(report.read_text())["bundles"]
    return {c["name"]: c for b in bundles for c in b["checks"] if c["name"].startswith("audit/")}


def _without_timings(check: dict) -> dict:
    return {**check, "details": {k: v for k, v in check["details"].items() if k not in TIMING}}


@pytest.fixture(scope="module")
def local_report(bundles, corpus, tmp_path_factory) -> dict[str, dict]:
    """The local engine's audit of the .txt corpus, through the command line."""
    from verify.cli import main

    report = tmp_path_factory.mktemp("local") / "r.json"
    code = main([str(bundles), "--no-numerics", "--only", ONLY, "--corpus", str(corpus["txt"]),
                 "--knn-queries", KNN, "--quiet", "--json", str(report)])  # fmt: skip
    assert code == 0
    checks = _audit_checks(report)
    assert len(checks) == 3 and all(c["details"]["texts"] == TEXTS for c in checks.values())
    encoder = checks[f"audit/{ONLY}[embedding]"]["details"]["statistics"]
    assert 0.9 < encoder["global_knn_recall10"] <= 1 and encoder["global_knn_recall10_ci95"] > 0
    return checks


def _as_json(results) -> dict[str, dict]:
    checks = [
        {"name": r.name, "status": r.status, "message": r.message, "details": r.details} for r in results
    ]
    return {c["name"]: c for c in json.loads(json.dumps(checks, default=float))}


def _same(got: dict[str, dict], expected: dict[str, dict]) -> None:
    assert {n: _without_timings(c) for n, c in got.items()} == {
        n: _without_timings(c) for n, c in expected.items()
    }


def _actor_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"BlockAuditor" in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


class ActorKiller(threading.Thread):
    """Kills the first audit actor once it has run for ``after`` seconds (mid-block: a block takes
    longer), then watches for the actor Ray starts in its place."""

    def __init__(self, after: float) -> None:
        super().__init__(daemon=True)
        self.after, self.killed, self.replaced = after, 0, False
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2) and not (first := _actor_pids()):
            pass
        if self.stop.wait(self.after) or not first:
            return
        self.killed = min(first)
        survivors = _actor_pids() - {self.killed}
        os.kill(self.killed, signal.SIGKILL)
        while not self.stop.wait(0.2):
            if _actor_pids() - survivors - {self.killed}:
                self.replaced = True
                return


def test_ray_engine_survives_a_killed_actor_and_gives_the_local_report(
    cluster, bundles, corpus, local_report, capsys, tmp_path
):
    """Two actors, one killed mid-block and restarted by Ray; the Parquet corpus read by Ray Data,
    the .txt one by the local engine: every statistic, quantile and worst text equal."""
    report = tmp_path / "r.json"
    killer = ActorKiller(after=8)
    killer.start()
    try:
        code, _, err = run_verify(capsys, bundles, "--no-numerics", "--only", ONLY,
                                  "--corpus", corpus["parquet"], "--corpus-column", "body",
                                  "--knn-queries", KNN, "--engine", "ray", "--workers", "2",
                                  "--worker-cpus", "0.5", "--json", report)  # fmt: skip
    finally:
        killer.stop.set()
        killer.join()
    assert code == 0, err[-2000:]
    assert killer.killed and killer.replaced, "no actor was killed and restarted"
    assert f"audited {TEXTS} texts" in err and "ray engine" in err
    _same(_audit_checks(report), local_report)
    assert any(c["details"]["worst_texts"] for c in local_report.values())


def _tree_memory(root: int) -> int:
    """Proportional set size (shared pages split between their users, so Ray's shared-memory object
    store counts once) of ``root`` and all its descendants: Ray's GCS, raylet and workers."""
    parents: dict[int, int] = {}
    pss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            rollup = (entry / "smaps_rollup").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(status.split("PPid:")[1].split()[0])
        pss[int(entry.name)] = int(rollup.split("\nPss:")[1].split()[0]) * 1024 if "\nPss:" in rollup else 0
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    return sum(pss.get(pid, 0) for pid in tree)


def _padded_parquet(path: Path, row_groups: int, real: list[str]) -> int:
    """``real`` texts spread among row groups of 15,000 blank texts of 8 KiB (120 MiB a group once
    read), which both engines read and drop. Plain encoding, as real texts are: a dictionary of one
    repeated string would hide the column's size from Ray's batch-size estimate. Returns the bytes
    of text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    blank, share = " " * 8192, len(real) // row_groups
    with pq.ParquetWriter(path, pa.schema([("text", pa.string())]), use_dictionary=False) as writer:
        for group in range(row_groups):
            rows = [blank] * 15000 + real[group * share : (group + 1) * share]
            writer.write_table(pa.table({"text": rows[::-1]}))
    return row_groups * 15000 * len(blank)


def _peak_growth(audit) -> tuple[int, int]:
    """(texts audited, peak growth in bytes of this process tree's memory while ``audit`` runs)."""
    baseline = _tree_memory(os.getpid())
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, _tree_memory(os.getpid()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, seen = audit()
    finally:
        done.set()
        sampler.join()
    return seen, peak - baseline


def test_memory_stays_bounded_while_a_large_parquet_corpus_streams(cluster, bundles, tmp_path):
    """4.6 GiB of text in Parquet (200 real texts among 600,000 blank ones): read whole, the
    cluster's memory would grow by the corpus size at least (Ray's own reader did, 5.4 GiB for
    2.75 GiB, on a dictionary-encoded column). Streamed, the growth is Ray's read buffers and the
    actor's sessions: measured 1.2 to 1.7 GiB for 0.7 to 2.8 GiB of text, so half the corpus bounds it
    with a margin of 0.6 GiB."""
    from verify.audit import AuditRequest
    from verify.audit_ray import RayOptions, run_ray_audit

    real = [" ".join(t.split()[:4]) for t in corpus_texts(200, set())]
    path = tmp_path / "padded.parquet"
    text_bytes = _padded_parquet(path, 40, real)
    # the main pass's memory: the kNN pre-pass (off here) holds 512 texts, but reads it all again
    request = AuditRequest(corpus=path, only=(ONLY,), queries=0)
    roots = [bundles / "encoder_v1", bundles / "personality_v1"]
    seen, growth = _peak_growth(lambda: run_ray_audit(roots, request, RayOptions(workers=1)))
    print(f"memory grew {growth / 2**30:.2f} GiB for {text_bytes / 2**30:.2f} GiB of text")
    assert seen == 200
    assert growth < text_bytes / 2, f"memory grew {growth / 2**30:.2f} GiB for {text_bytes / 2**30:.2f} GiB"


def test_unreadable_corpus_on_ray_exits_2_with_the_local_engines_one_line_error(
    cluster, bundles, capsys, tmp_path
):
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes(b"fine\ncaf\xe9\n")
    code, out, err = run_verify(
        capsys, bundles, "--no-numerics", "--only", ONLY, "--corpus", corpus, "--engine", "ray"
    )
    assert code == 2
    assert (
        err.strip().splitlines()[-1]
        == f"verify-contract: error: {corpus}: not UTF-8 text (invalid continuation byte at byte 8)"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--corpus", "s3://bucket/texts.parquet"), "a remote corpus needs --engine ray"),
        (("--engine", "ray", "--workers", "0"), "--workers 0: must be at least 1"),
        (("--engine", "ray", "--workers", "3"), "3 workers of 1 CPUs do not fit a cluster of 2 CPUs"),
    ],
)
def test_engine_arguments_that_cannot_work_exit_2(cluster, bundles, corpus, capsys, arguments, message):
    args = ("--corpus", corpus["txt"], *arguments) if arguments[0] != "--corpus" else arguments
    code, _, err = run_verify(capsys, bundles, "--no-numerics", "--only", ONLY, *args)
    assert code == 2 and message in err and "Traceback" not in err

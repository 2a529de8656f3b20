"""shrinkvec eval / tune on the shipped demo data, against numpy computations written out here."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from conftest import one_row
from shrinkvec import catalog, codes, configs, demo, metrics, query, tune
from shrinkvec.evaluate import EvalError, Evaluator, read_queries, resolve_profile
from shrinkvec.load import LoadOptions, load

SV = [sys.executable, "-m", "shrinkvec.cli"]
K = 10
NQ = 120  # demo queries used (of 200): keeps the file fast


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    return demo.load_data()


@pytest.fixture
def table(migrated_dsn: str, data: demo.DemoData, tmp_path: Path) -> Path:
    """The demo docs loaded with bits, a 64-d prefix and int8; returns the queries .npy."""
    np.save(tmp_path / "docs.npy", data.docs)
    load(migrated_dsn, tmp_path / "docs.npy",
         LoadOptions(table="demo", profile="bits,prefix:64,int8", reject_file=tmp_path / "rejects"))
    np.save(tmp_path / "q.npy", data.queries[:NQ])
    return tmp_path / "q.npy"


def cos_dist(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    return np.asarray(1 - (x64 @ q64) / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64)), dtype=np.float64)


_SIGNS: dict[int, np.ndarray] = {}


def signs(x: np.ndarray) -> np.ndarray:
    """+-1 of every sign bit of x (binarize, the numpy reference), cached per array."""
    if id(x) not in _SIGNS:
        b = np.unpackbits(codes.binarize_batch(x), axis=1, bitorder="big")[:, : x.shape[1]]
        _SIGNS.clear()
        _SIGNS[id(x)] = b.astype(np.float64) * 2 - 1
    return _SIGNS[id(x)]


def two_stage(x: np.ndarray, q: np.ndarray, stages: list[tuple[str, int]], k: int) -> list[int]:
    """numpy: shortlist by each stage's score, rerank by exact cosine (row numbers are the ids)."""
    cand = np.arange(len(x))
    for kind, n in stages:
        if kind == "bits":
            score = -(signs(x)[cand] @ q.astype(np.float64))
        else:
            score = cos_dist(x[cand, :64], q[:64])
        cand = cand[np.argsort(score, kind="stable")[:n]]
    return [int(i) for i in cand[np.argsort(cos_dist(x[cand], q), kind="stable")[:k]]]


def exact(x: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(cos_dist(x, q), kind="stable")[:k]]


def recall(found: list[int], truth: list[int]) -> float:
    return len(set(found) & set(truth)) / len(truth)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SV, *args], capture_output=True, text=True, cwd=cwd)


def test_eval_recall_agrees_with_numpy(table: Path, migrated_dsn: str, data: demo.DemoData) -> None:
    x, qs = data.docs, data.queries[:NQ]
    truth = [exact(x, q, K) for q in qs]
    stage_configs = {"bits@20": [("bits", 20)], "prefix:64@30": [("prefix", 30)],
                     "bits@100>prefix:64@20": [("bits", 100), ("prefix", 20)]}
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        p = resolve_profile(conn, "demo", "public", None)
        with Evaluator(conn, p, read_queries(table), K) as ev:
            assert ev.truth.tolist() == truth  # the ground truth itself
            for spec, stages in stage_configs.items():
                r = ev.measure(configs.parse(spec))
                want = np.array([recall(two_stage(x, q, stages, K), t) for q, t in zip(qs, truth)])
                assert r.queries == NQ
                assert r.recall == pytest.approx(want.mean(), abs=1e-9), spec
                assert r.recall_p5 == pytest.approx(np.percentile(want, 5), abs=1e-9), spec
                assert 0 < r.ms_p50 <= r.ms_p95
            assert ev.measure(configs.parse("bits@20")).bytes_per_row == 48
            assert ev.measure(configs.parse("bits@100>prefix:64@20")).bytes_per_row == 48 + 64 * 4
            assert ev.measure(configs.parse("exact")).recall == pytest.approx(1.0)
            # the index: recall from ids fetched here with the same settings, sizes from the catalog
            r = ev.measure(configs.parse("index@30"))
            name = ev.index_name(configs.parse("index@30"))
            conn.execute("SET shrinkvec.shortlist = 30")
            got = [[row[0] for row in conn.execute(
                "SELECT id FROM demo ORDER BY embedding <=> %s LIMIT 10", (q,)).fetchall()] for q in qs]
            conn.execute("RESET shrinkvec.shortlist")
            assert r.recall == pytest.approx(np.mean([recall(g, t) for g, t in zip(got, truth)]), abs=1e-9)
            size = one_row(conn.execute("SELECT size_bytes FROM shrinkvec_index_info(%s)", (name,)))[0]
            assert r.index_mb == pytest.approx(size / 2**20) and r.build_s is not None and r.build_s > 0
            assert r.bytes_per_row == pytest.approx(size / len(x))
        # the evaluator drops the indexes it built
        assert one_row(conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'shrinkvec_eval%'"))[0] == 0


def test_eval_cli_json_plot_and_qrels(table: Path, migrated_dsn: str, data: demo.DemoData) -> None:
    # natural qrels: a query is the summary paragraph of a docstring, its relevant documents the
    # paragraphs of the same docstring; TREC format, with a comment and one graded line
    docs = [json.loads(line) for line in gzip.open(demo.data_dir() / "docs.jsonl.gz", "rt")]
    queries = [json.loads(line) for line in gzip.open(demo.data_dir() / "queries.jsonl.gz", "rt")][:NQ]
    rels: dict[int, dict[int, float]] = {}
    for qi, qrow in enumerate(queries):
        for d in docs:
            if d["source"] == qrow["source"]:
                rels.setdefault(qi, {})[d["id"]] = 1.0
    graded = next(iter(rels))
    rels[graded][next(iter(rels[graded]))] = 3.0
    lines = ["# query iter doc grade"] + [f"{q} 0 {d} {g:g}" for q, ds in rels.items() for d, g in ds.items()]
    (table.parent / "qrels.txt").write_text("\n".join(lines) + "\n")

    (table.parent / "out").mkdir()
    res = run("eval", "--table", "demo", "--queries", "q.npy", "--configs", "exact bits@50,index@50",
              "--configs", "prefix:64@100", "--qrels", "qrels.txt", "--plot", "out/p.png", "--json", "--quiet",
              "--dsn", migrated_dsn, cwd=table.parent)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ground_truth"] == "numpy" and out["rows"] == len(data.docs) and out["queries"] == NQ
    assert [r["config"] for r in out["results"]] == ["exact", "bits@50", "index@50", "prefix:64@100"]
    assert (table.parent / "out" / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # nDCG@10 / MRR@10 written out by hand for the bits@50 two-stage result
    x, qs = data.docs, data.queries[:NQ]
    ndcgs, rrs = [], []
    for qi in sorted(rels):
        ranked = two_stage(x, qs[qi], [("bits", 50)], K)
        dcg = sum(rels[qi].get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked))
        ideal = sorted(rels[qi].values(), reverse=True)[:K]
        ndcgs.append(dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal)))
        rrs.append(next((1 / (i + 1) for i, d in enumerate(ranked) if d in rels[qi]), 0.0))
    bits = out["results"][1]
    assert bits["ndcg"] == pytest.approx(np.mean(ndcgs), abs=1e-5)
    assert bits["mrr"] == pytest.approx(np.mean(rrs), abs=1e-5)
    assert 0 < out["exact_ndcg"] <= 1 and bits["ndcg"] <= out["exact_ndcg"] + 0.02
    index = out["results"][2]
    assert index["index_mb"] > 0 and index["build_s"] > 0 and index["bytes_per_row"] < 200


def test_metrics_by_hand(tmp_path: Path) -> None:
    rels = {3: 2.0, 1: 1.0, 7: 1.0}
    # DCG = 2/log2(3); IDCG@3 = 2 + 1/log2(3) + 1/log2(4)
    assert metrics.ndcg_at_k([5, 3, 9, 1], rels, 3) == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3) + 0.5))
    assert metrics.mrr_at_k([5, 3, 9, 1], rels, 3) == 0.5
    assert metrics.mrr_at_k([5, 9], rels, 3) == 0.0
    assert metrics.ndcg_at_k([3, 1, 7], rels, 3) == pytest.approx(1.0)
    f = tmp_path / "q.tsv"
    f.write_text("query-id\tcorpus-id\tscore\n0\t12\t1\n1\t5\n0\t12\t2\n")
    assert metrics.read_qrels(f, 2) == {0: {12: 2.0}, 1: {5: 1.0}}
    f.write_text("0 12 1\n5 3 1\n")
    with pytest.raises(metrics.QrelsError, match=r"q.tsv:2: query row 5 is outside the 2 queries"):
        metrics.read_qrels(f, 2)
    f.write_text("0 12 x\n")
    with pytest.raises(metrics.QrelsError, match=r"grade 'x' is not a number"):
        metrics.read_qrels(f, 2)
    assert metrics.pareto_front([1, 2, 3, 1.5], [0.5, 0.9, 0.95, 0.4]) == [0, 1, 2]


def test_configs_parse_and_split() -> None:
    c = configs.parse("index:lists=40:probes=8:bits=192@200")
    assert (c.lists, c.probes, c.bits, c.shortlist) == (40, 8, 192, 200) and c.spec() == "index:lists=40:probes=8:bits=192@200"
    assert configs.parse("bits@400>prefix:128@100").stages == (("bits", 400), ("prefix:128", 100))
    r = configs.parse("index:lists=40:probes=8:refine=4@200")
    assert (r.refine, r.rerank) == (4, 200) and r.spec() == "index:lists=40:probes=8:refine=4:rerank=200@200"
    # an index configuration's plan needs nothing of the profile when k is given
    # (no profile at all: None where a Profile is typed, on purpose)
    settings = query.plan(None, r, k=10).settings  # type: ignore[arg-type]
    assert settings == {"shrinkvec.shortlist": "200", "shrinkvec.probes": "8", "shrinkvec.rerank": "200"}
    assert tune.index_settings(r) == {"shrinkvec.shortlist": 200, "shrinkvec.probes": 8, "shrinkvec.rerank": 200}
    for bad, msg in [("bits", "unknown config 'bits'"), ("bits@50>int8@100", "at most the previous"),
                     ("index:refine=3@50", "refine must be 2, 4 or 8"), ("index:rerank=9@50", "rerank needs refine"),
                     ("index:lists=10@50", "needs probes"), ("index:foo=1@5", "unknown or repeated")]:
        with pytest.raises(configs.ConfigError, match=msg):
            configs.parse(bad)
    sel, held = tune.split(9, seed=3)
    assert len(sel) == 5 and len(held) == 4 and sorted([*sel, *held]) == list(range(9))
    assert (tune.split(9, seed=3)[0] == sel).all() and not (tune.split(9, seed=4)[0] == sel).all()


def test_tune_json_held_out_and_apply(table: Path, migrated_dsn: str, data: demo.DemoData) -> None:
    target = 0.95
    cands = "bits@20 bits@50 bits@100 prefix:64@50 prefix:64@200 bits@100>prefix:64@30"
    res = run("tune", "--table", "demo", "--queries", "q.npy", "--target-recall", str(target), "--configs", cands,
              "--json", "--apply", "--quiet", "--dsn", migrated_dsn, cwd=table.parent)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert {"stage", "shortlist", "recall", "ms"} <= out.keys() and out["met"] is True
    assert isinstance(out["stage"], str) and isinstance(out["ms"], float)
    # the held-out recall, recomputed in numpy on the held-out rows of the documented split
    _, held = tune.split(NQ, seed=0)
    assert out["queries"] == {"selection": NQ - len(held), "held_out": len(held)}
    spec = configs.parse(out["config"])
    stages = [("bits" if s.startswith("bits") else "prefix", n) for s, n in spec.stages]
    x, qs = data.docs, data.queries[:NQ]
    want = np.mean([recall(two_stage(x, qs[i], stages, K), exact(x, qs[i], K)) for i in held])
    assert out["recall"] == pytest.approx(want, abs=1e-6)
    assert out["selection_recall"] >= target and out["recall"] >= target - 0.01
    # --apply: the profile's default search is the choice, and the generated SQL uses it
    with psycopg.connect(migrated_dsn) as conn:
        p = catalog.find_profile(conn, "demo")
        assert p is not None
        tuned = one_row(conn.execute("SELECT tuned FROM shrinkvec.profiles WHERE name = %s", (p.name,)))[0]
    assert p is not None and p.search_config == out["config"] and p.shortlist == spec.stages[0][1]
    assert tuned["target_recall"] == target and tuned["recall"] == out["recall"]
    sql_text = run("sql", "--table", "demo", "--dsn", migrated_dsn, cwd=table.parent).stdout
    assert f"suggested {spec.stages[0][1]}" in sql_text
    assert sql_text.count("shortlist of stage") == len(spec.stages)
    for i, (stage, _) in enumerate(spec.stages, 1):
        assert f"shortlist of stage {i}, {p.code(stage).spec()}" in sql_text


def test_tune_index_apply_keeps_index(table: Path, migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        p = resolve_profile(conn, "demo", "public", None)
        with Evaluator(conn, p, read_queries(table), K) as ev:
            # one evaluation index at a time: a flat config measured again after an IVF one still
            # runs on the flat index (the planner would otherwise pick the other)
            flat, ivf = configs.parse("index@30"), configs.parse("index:lists=20:probes=2@30")
            first = ev.measure(flat)
            assert ev.measure(ivf).recall != first.recall
            assert ev.measure(flat).recall == first.recall
            choice = tune.tune(ev, configs.parse_many(["index:lists=20:probes=2@30 index@100"]), 0.99)
            assert choice.chosen.config.spec() == "index@100" and choice.held_out.recall >= 0.98
            msg = tune.apply(conn, ev, choice)
        assert "WITH (shortlist = 100)" in msg and "every connection searches with these" in msg
        names = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'demo'").fetchall()]
        assert any(n.startswith("shrinkvec_tuned_") for n in names) and not any("eval" in n for n in names)
        tuned = next(n for n in names if n.startswith("shrinkvec_tuned_"))
        prof = catalog.find_profile(conn, "demo")
        assert prof is not None and prof.search_config == "index@100"
    # a new connection with no SET gets the tuned setting (the index's own), and a SET still wins
    with psycopg.connect(migrated_dsn, autocommit=True) as fresh:
        assert fresh.execute("SELECT scan_shortlist FROM shrinkvec_index_info(%s)", (tuned,)).fetchone() == (100,)
        fresh.execute("SET shrinkvec.shortlist = 30")
        assert fresh.execute("SELECT scan_shortlist FROM shrinkvec_index_info(%s)", (tuned,)).fetchone() == (30,)


def test_tune_says_when_nothing_reaches_the_target(table: Path, migrated_dsn: str) -> None:
    res = run("tune", "--table", "demo", "--queries", "q.npy", "--target-recall", "1.0", "--configs",
              "bits@10 prefix:64@10", "--apply", "--quiet", "--dsn", migrated_dsn, cwd=table.parent)
    assert res.returncode == 2, res.stderr
    assert "no configuration reaches recall@10 1.0; the best found is bits@10" in res.stdout
    assert "nothing applied" in res.stderr
    with psycopg.connect(migrated_dsn) as conn:
        prof = catalog.find_profile(conn, "demo")
        assert prof is not None and prof.search_config is None


def test_bad_input_errors_name_the_problem(table: Path, migrated_dsn: str) -> None:
    d = table.parent
    np.save(d / "dims.npy", np.ones((3, 5), dtype=np.float32))
    np.save(d / "empty.npy", np.zeros((0, 384), dtype=np.float32))
    nan = np.ones((4, 384), dtype=np.float32)
    nan[2, 7] = np.nan
    np.save(d / "nan.npy", nan)
    cases = [
        (["--table", "nope", "--queries", "q.npy"], "table public.nope does not exist"),
        (["--table", "demo", "--queries", "dims.npy"], "the queries have 5 dimensions, public.demo.embedding has 384"),
        (["--table", "demo", "--queries", "empty.npy"], "empty.npy has no queries"),
        (["--table", "demo", "--queries", "nan.npy"], "nan.npy: query 2 has NaN or infinite values"),
        (["--table", "demo", "--queries", "missing.npy"], "no such query file: missing.npy"),
        (["--table", "demo", "--queries", "q.npy", "--configs", "bits@5"], "shortlist 5 is smaller than k = 10"),
        (["--table", "demo", "--queries", "q.npy", "--configs", "bits:7@50"], "has no code 'bits:7'"),
    ]
    for args, message in cases:
        res = run("eval", *args, "--no-plot", "--quiet", "--dsn", migrated_dsn, cwd=d)
        assert res.returncode == 1, (args, res.stderr)
        assert res.stderr.strip().splitlines() == [f"error: {res.stderr.strip()[7:]}"]  # one line
        assert message in res.stderr, (message, res.stderr)
    with pytest.raises(EvalError, match="k = 5000 is more than the table's 4000 rows"):
        with psycopg.connect(migrated_dsn) as conn:
            Evaluator(conn, resolve_profile(conn, "demo", "public", None), read_queries(table), 5000)


def test_eval_plot_into_a_missing_directory_is_an_error(table: Path, migrated_dsn: str) -> None:
    res = run("eval", "--table", "demo", "--queries", "q.npy", "--configs", "bits@50", "--plot", "missing/p.png",
              "--quiet", "--dsn", migrated_dsn, cwd=table.parent)
    assert res.returncode == 1
    assert res.stderr.strip() == (f"error: cannot write the plot missing/p.png: directory {table.parent / 'missing'} "
                                  "does not exist")
    assert not (table.parent / "missing").exists()  # not created silently


def test_pareto_labels_do_not_overlap_and_are_legible(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from shrinkvec.evaluate import Result, pareto_figure, pareto_plot

    # a crowded front: eight configurations a hair apart in latency, size and recall, plus dominated ones
    specs = ["index@20", "index@30", "index@40", "index@50", "bits@20", "bits@30", "bits@40", "bits@50",
             "prefix:64@100", "bits@400>prefix:64@100"]
    results = [Result(configs.parse(spec), 100, recall=0.95 + 0.002 * i, recall_p5=0.9, ms_p50=1.0 + 0.02 * i,
                      ms_p95=2.0, bytes_per_row=48.0 + i) for i, spec in enumerate(specs[:8])]
    results += [Result(configs.parse(spec), 100, recall=0.9, recall_p5=0.8, ms_p50=5.0, ms_p95=6.0, bytes_per_row=300.0)
                for spec in specs[8:]]
    fig = pareto_figure(results, "crowded")
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            labels = [t for t in ax.texts if t.get_text()]
            assert len(labels) == 8  # every point of the front is labelled
            assert all(t.get_fontsize() >= 9 for t in labels)
            boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text, without its leader line
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    assert not boxes[i].overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
    finally:
        plt.close(fig)
    pareto_plot(results, tmp_path / "p.png", "crowded")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

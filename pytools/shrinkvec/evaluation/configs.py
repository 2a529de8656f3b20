"""Search configurations that `shrinkvec eval` measures and `shrinkvec tune` chooses from.

A configuration is written as a short spec (also what `tune --apply` stores in the profile):

- ``exact``: ``ORDER BY vector <=> q LIMIT k`` with index scans off (the baseline);
- ``STAGE@N``: shortlist N rows by a code column, then rerank by the full vector. STAGE is what
  ``shrinkvec search --stage`` takes: ``bits``, ``bits:256``, ``prefix:128``, ``int8`` or a code column;
- ``STAGE@N>STAGE@M...``: a funnel, each stage reranking the previous one's shortlist (N >= M);
- ``index@S``, ``index:lists=L:probes=P:bits=B:refine=R:rerank=N@S``: a ``shrinkvec`` index on the vector
  column (flat when lists is 1 or left out; ``bits`` codes only the first B dimensions; ``refine`` keeps
  R-bit refine codes, R = 2, 4 or 8), searched with the unchanged exact query and ``shrinkvec.shortlist =
  S``, ``shrinkvec.probes = P``, ``shrinkvec.rerank = N`` (with refine codes; default 200).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from shrinkvec.kinds import Code
from shrinkvec.profile import Profile, ProfileError

ConfigKind = Literal["exact", "stages", "index"]

INDEX_SHORTLISTS = (20, 50, 100, 200, 400)
IVF_SHORTLISTS = (50, 100, 200, 400)
IVF_MIN_ROWS = 5000  # the default grid tries an IVF index only on tables at least this large
REFINE_MIN_ROWS = 100_000  # ... and one with refine codes (4 bits) only on tables at least this large
REFINE_BITS = (2, 4, 8)
DEFAULT_RERANK = 200  # shrinkvec.rerank's default (a cap on the rows the refine bounds let the scan read)
# Code-column stages run as sequential scans (~0.3-4 us a row): above this many rows the default grid
# leaves them out (seconds a query at 1M rows); name them with --configs to measure them anyway.
STAGE_MAX_ROWS = 250_000

_STAGE = re.compile(r"^([^@>\s]+)@(\d+)$")
_INDEX = re.compile(r"^index((?::[a-z]+=\d+)*)@(\d+)$")


class ConfigError(ProfileError):
    """A configuration spec that cannot be parsed or used (the message names it)."""


@dataclass(frozen=True)
class Config:
    """One search configuration (see the module docstring for its spec)."""

    kind: ConfigKind
    stages: tuple[tuple[str, int], ...] = ()  # (stage, shortlist) for kind "stages"
    lists: int = 1  # index: lists (1 = flat)
    probes: int = 0  # index: shrinkvec.probes (IVF only)
    bits: int = 0  # index: coded dimensions (0 = all)
    shortlist: int = 0  # index: shrinkvec.shortlist
    refine: int = 0  # index: bits per dimension of its refine codes (0 = none)
    rerank: int = 0  # index with refine codes: shrinkvec.rerank

    def spec(self) -> str:
        if self.kind == "exact":
            return "exact"
        if self.kind == "stages":
            return ">".join(f"{s}@{n}" for s, n in self.stages)
        opts = ""
        if self.lists > 1:
            opts += f":lists={self.lists}:probes={self.probes}"
        if self.bits:
            opts += f":bits={self.bits}"
        if self.refine:
            opts += f":refine={self.refine}:rerank={self.rerank}"
        return f"index{opts}@{self.shortlist}"

    def family(self) -> str:
        """For plots and tables: exact, bits, prefix, int8, funnel, index flat, index ivf."""
        if self.kind == "exact":
            return "exact"
        if self.kind == "index":
            return ("index ivf" if self.lists > 1 else "index flat") + (" refine" if self.refine else "")
        if len(self.stages) > 1:
            return "funnel"
        return self.stages[0][0].split(":")[0]

    @property
    def first_shortlist(self) -> int:
        return self.stages[0][1] if self.kind == "stages" else self.shortlist


def parse(spec: str) -> Config:
    """A Config from its spec; ConfigError names the spec when it is malformed."""
    s = spec.strip()
    if s == "exact":
        return Config("exact")
    m = _INDEX.match(s)
    if m:
        return _parse_index(spec, m.group(1), int(m.group(2)))
    if s.startswith("index"):
        raise ConfigError(f"config {spec!r}: write index@S or index:lists=L:probes=P[:bits=B][:refine=R:rerank=N]@S")
    return _parse_stages(spec, s)


def _index_options(spec: str, text: str) -> dict[str, int]:
    """The `:key=value` options of an index spec, each known and given once."""
    opts: dict[str, int] = {}
    for part in filter(None, text.split(":")):
        key, value = part.split("=")
        if key not in ("lists", "probes", "bits", "refine", "rerank") or key in opts:
            raise ConfigError(f"config {spec!r}: unknown or repeated index option {key!r} "
                              "(use lists, probes, bits, refine, rerank)")
        opts[key] = int(value)
    return opts


def _parse_index(spec: str, options: str, shortlist: int) -> Config:
    """index[:lists=L:probes=P][:bits=B][:refine=R:rerank=N]@S."""
    opts = _index_options(spec, options)
    lists = opts.get("lists", 1)
    probes = opts.get("probes", 0)
    if lists < 1:
        raise ConfigError(f"config {spec!r}: lists must be at least 1")
    if lists > 1 and not 1 <= probes <= lists:
        raise ConfigError(f"config {spec!r}: an IVF index (lists={lists}) needs probes between 1 and {lists}")
    if lists == 1 and probes:
        raise ConfigError(f"config {spec!r}: probes needs lists > 1")
    if shortlist < 1:
        raise ConfigError(f"config {spec!r}: the shortlist must be at least 1")
    refine = opts.get("refine", 0)
    if refine and refine not in REFINE_BITS:
        raise ConfigError(f"config {spec!r}: refine must be 2, 4 or 8, not {refine}")
    if "rerank" in opts and not refine:
        raise ConfigError(f"config {spec!r}: rerank needs refine codes (refine=2, 4 or 8)")
    rerank = opts.get("rerank", DEFAULT_RERANK if refine else 0)
    if refine and rerank < 1:
        raise ConfigError(f"config {spec!r}: rerank must be at least 1")
    return Config("index", lists=lists, probes=probes, bits=opts.get("bits", 0), shortlist=shortlist,
                  refine=refine, rerank=rerank)


def _parse_stages(spec: str, s: str) -> Config:
    """STAGE@N, or a funnel STAGE@N>STAGE@M... with shortlists that do not grow."""
    stages = []
    for part in s.split(">"):
        m = _STAGE.match(part.strip())
        if not m:
            raise ConfigError(f"unknown config {spec!r}: use exact, STAGE@N (e.g. bits@100, prefix:128@200), "
                              "a funnel bits@400>prefix:128@100, or index[:lists=L:probes=P][:bits=B]@S")
        stages.append((m.group(1), int(m.group(2))))
    sizes = [n for _, n in stages]
    if any(n < 1 for n in sizes):
        raise ConfigError(f"config {spec!r}: shortlists must be at least 1")
    if any(b > a for a, b in pairwise(sizes)):
        raise ConfigError(f"config {spec!r}: each stage's shortlist must be at most the previous one's")
    return Config("stages", stages=tuple(stages))


def parse_many(specs: Iterable[str]) -> list[Config]:
    """Configs from specs, each of which may hold several separated by spaces or commas (duplicates dropped)."""
    out: dict[str, Config] = {}
    for text in specs:
        for part in re.split(r"[\s,]+", text.strip()):
            if part:
                c = parse(part)
                out.setdefault(c.spec(), c)
    if not out:
        raise ConfigError("no configurations given")
    return list(out.values())


def check(config: Config, profile: Profile, k: int, rows: int) -> None:
    """ConfigError when a config cannot run on this profile with this k (missing code, shortlist < k)."""
    if config.kind == "stages":
        for stage, n in config.stages:
            try:
                profile.code(stage)
            except ProfileError as exc:
                raise ConfigError(f"config {config.spec()!r}: {exc}") from None
            if n < k:
                raise ConfigError(f"config {config.spec()!r}: shortlist {n} is smaller than k = {k}")
    elif config.kind == "index":
        if config.shortlist < k:
            raise ConfigError(f"config {config.spec()!r}: shortlist {config.shortlist} is smaller than k = {k}")
        if config.bits and not 1 <= config.bits <= profile.dims:
            raise ConfigError(f"config {config.spec()!r}: bits must be between 1 and {profile.dims}")
        if config.lists > max(rows, 1):
            raise ConfigError(f"config {config.spec()!r}: {config.lists} lists for a table of {rows} rows")


def default_grid(profile: Profile, k: int, rows: int) -> list[Config]:
    """The default configurations: exact; each code column at several shortlist sizes and a funnel from
    the bits to the other codes (on tables of at most STAGE_MAX_ROWS rows); a flat shrinkvec index at
    several shortlists; on tables of at least IVF_MIN_ROWS rows an IVF index with sqrt(rows) lists
    at 1/16, 1/8 and 1/4 of them probed; and on tables of at least REFINE_MIN_ROWS rows the same IVF
    index with 4-bit refine codes (rerank 20 and 40) at the two smaller probe counts."""
    out = [Config("exact")]

    def sizes(options: Iterable[int]) -> list[int]:
        keep = [n for n in options if k <= n < rows]
        return keep or [max(k, min(rows, max(options)))]

    def name(c: Code) -> str:  # what `shrinkvec search --stage` takes: bits, bits:256, prefix:128, int8
        return c.kind if c.length == profile.dims and \
            sum(o.kind == c.kind for o in profile.codes) == 1 else c.spec()

    stage_codes = profile.codes if rows <= STAGE_MAX_ROWS else ()
    for c in stage_codes:
        out += [Config("stages", stages=((name(c), n),)) for n in sizes(c.code_kind.shortlists)]
    bits = [c for c in stage_codes if c.code_kind.funnel_first]
    others = [c for c in stage_codes if not c.code_kind.funnel_first]
    if bits and others:
        first = max(bits, key=lambda c: c.length)
        for second in others:
            for n1, n2 in ((400, 100), (200, 50)):
                if n2 >= k and n1 < rows:
                    out.append(Config("stages", stages=((name(first), n1), (name(second), n2))))
    out += [Config("index", shortlist=n) for n in sizes(INDEX_SHORTLISTS)]
    if rows >= IVF_MIN_ROWS:
        lists = max(2, round(math.sqrt(rows)))
        probes = sorted({max(1, lists // d) for d in (16, 8, 4)})
        out += [Config("index", lists=lists, probes=p, shortlist=n) for p in probes for n in sizes(IVF_SHORTLISTS)]
        if rows >= REFINE_MIN_ROWS:
            out += [Config("index", lists=lists, probes=p, shortlist=n, refine=4, rerank=r)
                    for p in probes[:2] for n in sizes(IVF_SHORTLISTS) for r in (40, 200) if r < n]
    return list({c.spec(): c for c in out}.values())

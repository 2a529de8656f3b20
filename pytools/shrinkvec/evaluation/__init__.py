"""Measuring and choosing a search configuration: `configs` (the `stage@shortlist` / `index@...` specs
and the default grid), `metrics` (recall, nDCG, MRR, qrels, the Pareto front), `evaluate` (recall /
latency / bytes of each config against exact search) and `tune` (the cheapest config that reaches a
target recall)."""

"""Analytics: measure real Claude Code runs (cloud or Ollama) and compare them.

stats    IterationStats: what one log says, as plain data
parser   stream-json (NDJSON) → IterationStats, line by line, bounded memory
summary  iterations → one run summary (totals, rates, cost only where meaningful)
store    SQLite (stdlib sqlite3, schema migrations) next to the raw NDJSON files
runner   the `analytics run` loop: backend environment, claude subprocess, finalisation
importer existing stream-json logs → a run
compare  two runs → figures and findings computed from them
report   the self-contained HTML page (inline SVG)
text     human renderings of the above (no printing here either)
"""

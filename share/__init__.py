"""Data files shipped with remote-ollama-proxy (templates, error pages, rules)."""

"""The gateway: HAProxy in front of Ollama.

Imports run one way, never in a circle:

    settings → paths → render (+ pool: pure, settings + resolved names → files)
             → nodes (the pool's stored state) → control (generations, run, reload,
               runtime API) ← tokens (commands)

The allowlist stays the one table in `aiserver.allowlist`.
"""

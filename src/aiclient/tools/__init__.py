"""What ai-client writes for each coding tool (Claude Code, Aider)."""

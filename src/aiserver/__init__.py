"""ai-server: turns an Ollama machine into a private, allowlisted gateway."""

"""ai-client: configures a laptop to use a remote-ollama-proxy server."""

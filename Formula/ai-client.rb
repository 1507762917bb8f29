# ai-client: the laptop's side of remote-ollama-proxy. This repository is the tap.
# `scripts/release VERSION` rewrites homepage, url and sha256 (from the reproducible build;
# Homebrew reads the version from the url); `scripts/release --check` and
# tests/formula/harness.rb verify this file.
class AiClient < Formula
  include Language::Python::Shebang

  desc "Point Aider and Claude Code at your own Ollama server over Tailscale"
  homepage "https://github.com/OWNER/remote-ollama-proxy"
  # unreleased: development formula, no release asset exists yet (scripts/release sets sha256)
  url "https://github.com/OWNER/remote-ollama-proxy/releases/download/v0.1.0/ai-client.pyz",
      using: :nounzip
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "MIT"

  livecheck do
    url :stable
    strategy :github_latest
  end

  depends_on "python@3.13"
  # No Ollama here: the laptop talks to the server's gateway over the tailnet. Aider and
  # Claude Code stay the user's choice (and their own installers); `ai-client setup`
  # configures whichever of them is present.

  def install
    libexec.install "ai-client.pyz" => "ai-client"
    # shiv writes `#!/usr/bin/env python3`; zip readers tolerate the longer prefix
    rewrite_shebang detected_python_shebang, libexec/"ai-client"
    chmod 0755, libexec/"ai-client"
    bin.install_symlink libexec/"ai-client"
    # The bundled data (templates, compatibility rules) ships inside the zipapp as the
    # `aishare` package; a copy in pkgshare lets you read it.
    python = formula_opt_bin("python@3.13")/"python3.13"
    system python, "-c", <<~PYTHON, libexec/"ai-client", pkgshare
      import pathlib, sys, zipfile
      prefix, dest = "site-packages/aishare/", pathlib.Path(sys.argv[2])
      with zipfile.ZipFile(sys.argv[1]) as archive:
          for name in archive.namelist():
              rel = name[len(prefix):]
              if not name.startswith(prefix) or not rel or rel.endswith("/"):
                  continue
              if rel == "__init__.py" or "__pycache__" in rel.split("/"):
                  continue
              (dest / rel).parent.mkdir(parents=True, exist_ok=True)
              (dest / rel).write_bytes(archive.read(name))
    PYTHON
  end

  def caveats
    <<~EOS
      Point this laptop at your server (its gateway is set up with `ai-server install`):
        ai-client setup
      It finds the tailnet device tagged tag:ai-server (or pass --server NAME), then writes
      an environment file your shells source, Aider's model settings and `claude-ollama`.
      Check it end to end with:
        ai-client test
    EOS
  end

  test do
    (testpath/"client.toml").write <<~TOML
      [server]
      host = "studio.tail1234.ts.net"
      port = 11434

      [client]
      model = "qwen3-coder:30b"
    TOML
    posix = shell_output("#{bin}/ai-client --config #{testpath}/client.toml env")
    assert_match "export OPENAI_API_BASE='http://studio.tail1234.ts.net:11434/v1'", posix
    assert_match "export AIDER_MODEL='openai/qwen3-coder:30b'", posix
    fish = shell_output("#{bin}/ai-client --config #{testpath}/client.toml env --shell fish")
    assert_match "set -gx OPENAI_API_BASE 'http://studio.tail1234.ts.net:11434/v1'", fish
    assert_match "ai-client #{version}", shell_output("#{bin}/ai-client --version")
  end
end

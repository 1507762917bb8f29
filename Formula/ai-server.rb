# ai-server: the Ollama machine's side of remote-ollama-proxy. This repository is the tap.
# `scripts/release VERSION` rewrites homepage, url and sha256 (from the reproducible build;
# Homebrew reads the version from the url); `scripts/release --check` and
# tests/formula/harness.rb verify this file.
class AiServer < Formula
  include Language::Python::Shebang

  desc "Private allowlisting gateway that serves your Ollama to your tailnet only"
  homepage "https://github.com/OWNER/remote-ollama-proxy"
  # unreleased: development formula, no release asset exists yet (scripts/release sets sha256)
  url "https://github.com/OWNER/remote-ollama-proxy/releases/download/v0.1.0/ai-server.pyz",
      using: :nounzip
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "MIT"

  livecheck do
    url :stable
    strategy :github_latest
  end

  depends_on "haproxy"
  depends_on "python@3.13"
  # Ollama is deliberately NOT a dependency. Many Ollama machines run the Ollama app (its own
  # bundled server) rather than the formula, and a formula dependency would install a second
  # `ollama` fighting the app for 127.0.0.1:11434. A dependency would also weaken
  # `ai-server pin-ollama`: Homebrew upgrades a pinned formula when a dependent needs it, and
  # Claude Code compatibility depends on the exact Ollama version. `ai-server install` checks
  # for Ollama >= 0.14.0 (the Anthropic endpoint) and says how to get it; see the caveats.

  def install
    libexec.install "ai-server.pyz" => "ai-server"
    # shiv writes `#!/usr/bin/env python3`; zip readers tolerate the longer prefix
    rewrite_shebang detected_python_shebang, libexec/"ai-server"
    chmod 0755, libexec/"ai-server"
    bin.install_symlink libexec/"ai-server"
    # The templates (HAProxy config, error pages, launchd/systemd units) ship inside the
    # zipapp as the `aishare` package; a copy in pkgshare lets you read what gets rendered.
    python = formula_opt_bin("python@3.13")/"python3.13"
    system python, "-c", <<~PYTHON, libexec/"ai-server", pkgshare
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
      ai-server also needs, on this machine:
        - Ollama 0.14.0 or newer: `brew install ollama` (or the Ollama app)
        - Tailscale, logged in (the gateway listens only on Tailscale addresses)
      Then run Ollama (loopback only) and the gateway as services:
        ai-server install
      and on each laptop:
        brew install ai-client && ai-client setup
    EOS
  end

  service do
    run [opt_bin/"ai-server", "run"]
    keep_alive true
    log_path var/"log/ai-server.log"
    error_log_path var/"log/ai-server.err.log"
    environment_variables PATH: std_service_path_env, SHIV_ROOT: var/"ai-server/shiv"
  end

  test do
    (testpath/"server.toml").write <<~TOML
      [gateway]
      listen = ["127.0.0.1"]
      port = #{free_port}
      metrics_port = #{free_port}
      stats_socket = "#{testpath}/admin.sock"
    TOML
    system bin/"ai-server", "--config", testpath/"server.toml", "config", "render",
           "--output", testpath/"gateway"
    assert_path_exists testpath/"gateway/errors/403.http"
    cfg = (testpath/"gateway/haproxy.cfg").read
    assert_match "bind 127.0.0.1:", cfg
    haproxy = formula_opt_bin("haproxy")/"haproxy"
    assert_match "Configuration file is valid",
                 shell_output("#{haproxy} -c -f #{testpath}/gateway/haproxy.cfg 2>&1")
    assert_match "/api/pull", shell_output("#{bin}/ai-server allowlist")
    assert_path_exists pkgshare/"haproxy/haproxy.cfg.tmpl"
  end
end

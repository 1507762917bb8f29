"""The Homebrew formulae, checked where Homebrew does not run (REFERENCE §5).

`ruby -c`; the Ruby harness (tests/formula/harness.rb: a minimal Formula DSL) loads each
formula, checks it against Homebrew's style rules, runs its `install` into a temporary prefix
with the freshly built zipapp, runs the installed executable and the `test do` block; and the
release machinery: `scripts/release --check` on this tree, the state rules, and a whole
release made in a scratch copy of the repository.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "formula" / "harness.rb"
TOOLS = ("ai-server", "ai-client")
DEPS = {"ai-server": ["haproxy", "python@3.13"], "ai-client": ["python@3.13"]}

if shutil.which("ruby") is None:  # scripts/test installs it; never silently pass without it
    raise RuntimeError("ruby is not installed: run scripts/test (it installs it)")


def tree_version() -> str:
    text = (REPO / "src" / "aicommon" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    assert match
    return match.group(1)


def python313() -> str:
    """A real CPython 3.13 standing in for Homebrew's python@3.13, so the zipapps run under the
    interpreter the formulae depend on. scripts/test finds (or, where Debian packages it,
    installs) one and exports ROP_PYTHON313; never a silent substitute."""
    candidates = [os.environ.get("ROP_PYTHON313", ""), "/usr/bin/python3.13",
                  "/usr/local/bin/python3.13",
                  *sorted(str(p) for p in Path(pwd.getpwuid(os.getuid()).pw_dir).glob(
                      ".pyenv/versions/3.13*/bin/python3.13"))]  # the real HOME: tests move it
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and subprocess.run(
                [candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 13))"],
                check=False).returncode == 0:
            return str(Path(candidate).resolve())
    pytest.fail("no Python 3.13 on this machine (Homebrew's python@3.13): run scripts/test, "
                "which finds or installs one, or set ROP_PYTHON313")


def load_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_script", REPO / "scripts/release.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def zipapps() -> dict[str, Path]:
    done = subprocess.run([str(REPO / "scripts/build-zipapps")], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return {tool: REPO / "dist" / tool for tool in TOOLS}


@pytest.fixture(scope="module")
def short_tmp() -> Iterator[Path]:
    """Under /tmp: HAProxy's stats socket path (inside testpath) must stay short."""
    path = Path(tempfile.mkdtemp(prefix="formula-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_harness(formula: Path, artifact: Path, root: Path, *extra: str
                ) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(["ruby", str(HARNESS), str(formula), "--artifact", str(artifact),
                           "--root", str(root), "--python", python313(), "--haproxy",
                           shutil.which("haproxy") or "haproxy", *extra],
                          capture_output=True, text=True, timeout=300, check=False)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"harness printed no JSON (exit {done.returncode}): {done.stderr[-3000:]}")
    return done.returncode, report, done.stderr


@pytest.fixture(scope="module")
def reports(zipapps: dict[str, Path], short_tmp: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for tool in TOOLS:
        root = short_tmp / tool
        rc, report, stderr = run_harness(REPO / "Formula" / f"{tool}.rb", zipapps[tool], root)
        report["_rc"], report["_stderr"], report["_root"] = rc, stderr, str(root)
        out[tool] = report
    return out


@pytest.mark.parametrize("tool", TOOLS)
def test_formula_is_valid_ruby(tool: str) -> None:
    done = subprocess.run(["ruby", "-c", str(REPO / "Formula" / f"{tool}.rb")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Syntax OK" in done.stdout, done.stderr


@pytest.mark.parametrize("tool", TOOLS)
def test_harness_installs_runs_and_tests_the_formula(reports: dict[str, dict[str, Any]],
                                                      tool: str) -> None:
    r = reports[tool]
    assert r["failures"] == [], r["_stderr"][-3000:]
    assert r["_rc"] == 0
    root = r["_root"]
    assert r["class"] == {"ai-server": "AiServer", "ai-client": "AiClient"}[tool]
    # the shebang points at Homebrew's Python through its opt link -- a real 3.13 here -- and
    # the zipapp runs under it
    assert r["shebang"] == f"#!{root}/opt/python@3.13/bin/python3.13"
    assert Path(f"{root}/opt/python@3.13/bin/python3.13").resolve() == Path(python313())
    assert r["version_output"] == f"{tool} {tree_version()}"
    assert {f"bin/{tool}", f"libexec/{tool}"} <= set(r["installed_files"])
    assert any(f.startswith(f"share/{tool}/") for f in r["installed_files"])


@pytest.mark.parametrize("tool", TOOLS)
def test_metadata_follows_the_conventions(reports: dict[str, dict[str, Any]], tool: str) -> None:
    r = reports[tool]
    assert r["deps"] == DEPS[tool]
    assert r["url_options"] == {"using": "nounzip"}
    assert r["url"] == f"{r['homepage']}/releases/download/v{r['version']}/{tool}.pyz"
    assert r["license"] == "MIT"
    assert r["livecheck"] == {"url": "stable", "strategy": "github_latest"}
    assert r["version"] == tree_version() or not r["unreleased_marker"]
    desc = r["desc"]
    assert len(desc) <= 80 and desc[0].isupper() and not desc.endswith(".")
    assert not re.match(r"(?i)(the|an?)\s", desc) and not re.match(r"(?i)ai[\s-]?", desc)


def test_ai_server_test_block_renders_and_haproxy_accepts(
        reports: dict[str, dict[str, Any]]) -> None:
    assert reports["ai-server"]["failures"] == []
    commands = reports["ai-server"]["test_commands"]
    assert any("config render --output" in c for c in commands)
    assert any("haproxy -c -f" in c for c in commands)
    assert "share/ai-server/haproxy/haproxy.cfg.tmpl" in reports["ai-server"]["installed_files"]


def test_ai_client_test_block_prints_the_environment(reports: dict[str, dict[str, Any]]) -> None:
    assert reports["ai-client"]["failures"] == []
    commands = reports["ai-client"]["test_commands"]
    assert any(c.endswith("client.toml env") for c in commands)
    assert any("env --shell fish" in c for c in commands)


def test_ai_server_service_uses_opt_paths(reports: dict[str, dict[str, Any]]) -> None:
    r = reports["ai-server"]
    root = r["_root"]
    svc = r["service"]
    assert svc["run"] == [f"{root}/opt/ai-server/bin/ai-server", "run"]
    assert svc["keep_alive"] == {"always": True}  # launchd KeepAlive; Linux: Restart=on-failure
    assert svc["log_path"] == f"{root}/var/log/ai-server.log"
    assert svc["error_log_path"] == f"{root}/var/log/ai-server.err.log"
    env = svc["environment_variables"]
    assert env["PATH"] == f"{root}/bin:{root}/sbin:/usr/bin:/bin:/usr/sbin:/sbin"
    assert env["SHIV_ROOT"] == f"{root}/var/ai-server/shiv"
    assert reports["ai-client"]["service"] is None


def test_caveats_give_the_next_step(reports: dict[str, dict[str, Any]]) -> None:
    server, client = reports["ai-server"]["caveats"], reports["ai-client"]["caveats"]
    assert "ai-server install" in server and "ai-client setup" in server
    assert "Ollama 0.14.0" in server
    assert "ai-client setup" in client


def test_harness_rejects_style_and_service_mistakes(zipapps: dict[str, Path],
                                                    tmp_path: Path) -> None:
    text = (REPO / "Formula" / "ai-server.rb").read_text()
    bad = re.sub(r'desc "[^"]*"', 'desc "An ai-server gateway for Ollama."', text)
    bad = bad.replace('run [opt_bin/"ai-server", "run"]', 'run [bin/"ai-server", "run"]')
    bad = bad.replace("using: :nounzip", "using: :curl")
    assert bad != text
    formula = tmp_path / "Formula" / "ai-server.rb"
    formula.parent.mkdir()
    formula.write_text(bad)
    rc, report, _ = run_harness(formula, zipapps["ai-server"], tmp_path / "root", "--no-install")
    assert rc == 1
    found = "\n".join(report["failures"])
    assert "desc starts with an article" in found
    assert "desc ends with a full stop" in found
    assert "service block uses bin; use opt_bin" in found
    assert "using: :nounzip" in found


def test_release_check_passes_on_this_tree(zipapps: dict[str, Path]) -> None:
    done = subprocess.run([str(REPO / "scripts/release"), "--check"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "release --check: OK" in done.stdout
    for tool in TOOLS:
        assert re.search(rf"built   {tool} +[0-9a-f]{{64}}", done.stdout)


def test_release_state_rules() -> None:
    rel = load_release()
    zeros, real = "0" * 64, "a" * 64

    def formula(version: str, sha: str, unreleased: bool,
                homepage: str = "https://github.com/o/remote-ollama-proxy") -> Any:
        return rel.FormulaInfo("ai-server", Path("x.rb"), "", homepage, "", version, sha,
                               unreleased)

    dated = {"Unreleased": None, "0.1.0": "2026-01-02"}
    undated = {"Unreleased": None}
    # development formulae: version == tree, not tagged, not dated, placeholder sha
    assert rel.formula_problems(formula("0.1.0", zeros, True), "0.1.0", undated, False, real) == []
    assert rel.formula_problems(formula("0.1.0", zeros, True), "0.2.0", undated, False, real)
    assert rel.formula_problems(formula("0.1.0", zeros, True), "0.1.0", undated, True, real)
    assert rel.formula_problems(formula("0.1.0", zeros, True), "0.1.0", dated, False, real)
    assert rel.formula_problems(formula("0.1.0", real, True), "0.1.0", undated, False, real)
    # released: a tree still at that version must rebuild to the pinned bytes
    assert rel.formula_problems(formula("0.1.0", real, False), "0.1.0", dated, True, real) == []
    moved = rel.formula_problems(formula("0.1.0", real, False), "0.1.0", dated, True, "b" * 64)
    assert moved and "without a version bump" in moved[0]
    # ... a tree that moved on leaves the tap on the last release
    assert rel.formula_problems(formula("0.1.0", real, False), "0.2.0", dated, True, "b" * 64) \
        == []
    assert rel.formula_problems(formula("0.2.0", real, False), "0.1.0", dated, True, real)
    assert rel.formula_problems(formula("0.1.0", real, False), "0.1.0", undated, True, real)
    assert rel.formula_problems(formula("0.1.0", real, False, "https://github.com/OWNER/x"),
                                "0.1.0", dated, True, real)


def scratch_copy(dest: Path) -> Path:
    """The repository without its build products, sharing this venv; setup-venv disabled so
    the shared venv is never re-pointed at the copy."""
    ignore = shutil.ignore_patterns(".venv", "dist", "build", ".git", "*_cache", ".hypothesis",
                                    "__pycache__", "*.egg-info")
    shutil.copytree(REPO, dest, ignore=ignore)
    (dest / ".venv").symlink_to(REPO / ".venv")
    (dest / "scripts" / "setup-venv").write_text("#!/bin/sh\nexit 0\n")
    return dest


def test_a_release_pins_the_formulae_to_the_reproducible_build(tmp_path: Path) -> None:
    copy = scratch_copy(tmp_path / "repo")
    version = "99.0.0"  # the copy's own version, whatever state this tree is in
    init = copy / "src/aicommon/__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"',
                           init.read_text()))
    (copy / "CHANGELOG.md").write_text("# Changelog\n\n## [Unreleased]\n\n### Added\n\n"
                                       "- Something users can see.\n")
    env = dict(os.environ, PYTHONPATH=str(copy / "src"))  # the copy's version, not this tree's

    def release(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(copy / "scripts/release"), *args], capture_output=True,
                              text=True, env=env, cwd=copy, timeout=600, check=False)

    if "/OWNER/" in (copy / "Formula/ai-server.rb").read_text():
        refused = release(version)
        assert refused.returncode == 1 and "--repo OWNER/NAME" in refused.stderr
    assert release("1.2.3").returncode == 1  # not the tree's version

    done = release(version, "--repo", "example/remote-ollama-proxy", "--date", "2026-01-02")
    assert done.returncode == 0, done.stdout + done.stderr
    sums = {name: sha for sha, name in (line.split("  ") for line in
                                        (copy / "dist/release/SHA256SUMS").read_text()
                                        .splitlines())}
    for tool in TOOLS:
        text = (copy / "Formula" / f"{tool}.rb").read_text()
        assert "# unreleased:" not in text
        assert not re.search(r'^\s*version "', text, re.MULTILINE)  # redundant with the url
        assert ('url "https://github.com/example/remote-ollama-proxy/releases/download/'
                f'v{version}/{tool}.pyz"') in text
        assert f'sha256 "{sums[f"{tool}.pyz"]}"' in text
        # the harness agrees: the released asset is exactly what the formula pins
        rc, report, err = run_harness(copy / "Formula" / f"{tool}.rb",
                                      copy / "dist/release" / f"{tool}.pyz",
                                      tmp_path / f"root-{tool}", "--no-install")
        assert rc == 0 and report["sha256_matches"] is True, err[-2000:]
    changelog = (copy / "CHANGELOG.md").read_text()
    assert re.search(rf"## \[Unreleased\]\n\n## \[{re.escape(version)}\] - 2026-01-02\n\n"
                     r"### Added\n\n- Something users can see\.", changelog)
    notes = (copy / "dist/release/RELEASE_NOTES.md").read_text()
    assert "- Something users can see." in notes and sums["ai-client.pyz"] in notes

    checked = release("--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert release(version, "--repo", "example/remote-ollama-proxy").returncode == 1  # once

    errors = copy / "src/aicommon/errors.py"
    errors.write_text(errors.read_text() + "\n# a change after the release\n")
    drifted = release("--check")
    assert drifted.returncode == 1
    assert f"changed since the {version} release without a version bump" in drifted.stderr


def test_install_docs_match_the_formulae(reports: dict[str, dict[str, Any]]) -> None:
    sources = [p for p in (REPO / "README.md", REPO / "docs/install.md")
               if p.exists() and "<!-- install:begin -->" in p.read_text()]
    assert sources, "no install section (<!-- install:begin --> … <!-- install:end -->)"
    text = sources[0].read_text()
    section = text.split("<!-- install:begin -->", 1)[1].split("<!-- install:end -->", 1)[0]
    for tool in TOOLS:
        assert "brew install" in section and f"/{tool}" in section
        for dep in reports[tool]["deps"]:
            assert f"`{dep}`" in section, dep
    assert "not a formula dependency" in section  # how Ollama is required, and why
    assert "ai-server install" in section and "ai-client setup" in section
    assert "scripts/release" in section


# Each rule Homebrew enforces (brew audit / brew style / Homebrew::Service / Formula#system),
# and the harness enforcing it: (name, edit of Formula/ai-server.rb, install too?, expected).
SERVER_RULES = [
    ("version-redundant", ('  sha256 "', '  version "0.1.0"\n  sha256 "'), False,
     "`version 0.1.0` is redundant with version scanned from URL"),
    ("formula-path-methods", ('formula_opt_bin("haproxy")/"haproxy"',
                              'Formula["haproxy"].opt_bin/"haproxy"'), False,
     'Homebrew/FormulaPathMethods: Use `formula_opt_bin("haproxy")` instead of '
     '`Formula["haproxy"].opt_bin`.'),
    ("service-opt-share", ('log_path var/"log/ai-server.log"', 'log_path opt_share/"x.log"'),
     False, "service block: NameError: undefined local variable or method `opt_share'"),
    ("service-pkgshare", ('log_path var/"log/ai-server.log"', 'log_path pkgshare/"x.log"'),
     False, "service block: NameError: undefined local variable or method `pkgshare'"),
    ("keep-alive-type", ("keep_alive true", 'keep_alive "yes"'), False,
     'TypeError: Service#keep_alive: expected TrueClass or FalseClass or Hash, got "yes"'),
    ("keep-alive-key", ("keep_alive true", "keep_alive forever: true"), False,
     "TypeError: Service#keep_alive only allows: [:always, :successful_exit, :crashed, :path]"),
    ("process-type", ("keep_alive true", "keep_alive true\n    process_type :bogus"), False,
     "TypeError: Service#process_type allows: background/standard/interactive/adaptive"),
    ("negative-nice", ("keep_alive true", "keep_alive true\n    nice(-5)"), False,
     "TypeError: Service#nice: require_root true is required for negative nice values"),
    ("env-key-type", ("SHIV_ROOT: var", '"SHIV_ROOT" => var'), False,
     "TypeError: Service#environment_variables: expected Symbol"),
    ("unknown-formula", ('formula_opt_bin("python@3.13")/"python3.13"',
                         'Formula["python"].opt_libexec/"python3.13"'), True,
     'FormulaUnavailableError: No available formula with the name "python"'),
    ("system-argument-type", ('libexec/"ai-server", pkgshare', 'libexec/"ai-server", [pkgshare]'),
     True, "TypeError: Formula#system: argument"),
]


@pytest.mark.parametrize("name, edit, installs, expected", SERVER_RULES,
                         ids=[r[0] for r in SERVER_RULES])
def test_harness_is_as_strict_as_homebrew(zipapps: dict[str, Path], short_tmp: Path, name: str,
                                          edit: tuple[str, str], installs: bool,
                                          expected: str) -> None:
    text = (REPO / "Formula" / "ai-server.rb").read_text()
    assert text.count(edit[0]) == 1, edit[0]
    formula = short_tmp / f"rule-{name}" / "ai-server.rb"
    formula.parent.mkdir()
    formula.write_text(text.replace(edit[0], edit[1]))
    rc, report, err = run_harness(formula, zipapps["ai-server"], short_tmp / f"root-{name}",
                                  *(() if installs else ("--no-install",)))
    assert rc == 1, err[-2000:]
    assert any(expected in f for f in report["failures"]), report["failures"]


def test_the_test_environment_is_homebrews(zipapps: dict[str, Path], short_tmp: Path) -> None:
    """`brew test` (and the install stage) run with Formula#common_sandbox_env
    (formula.rb:3743-3760): XDG_CONFIG_HOME=<home>/.config, PYTHONDONTWRITEBYTECODE=1."""
    text = (REPO / "Formula" / "ai-client.rb").read_text()
    probe = ('  test do\n    assert_equal "#{testpath}/.config", ENV["XDG_CONFIG_HOME"]\n'
             '    assert_equal "1", ENV["PYTHONDONTWRITEBYTECODE"]\n'
             '    assert_equal testpath.to_s, ENV["HOME"]\n')
    formula = short_tmp / "env-probe" / "ai-client.rb"
    formula.parent.mkdir()
    formula.write_text(text.replace("  test do\n", probe, 1))
    rc, report, err = run_harness(formula, zipapps["ai-client"], short_tmp / "root-env-probe")
    assert rc == 0 and report["failures"] == [], err[-3000:]


# -- before the first release: a local tap of this checkout, the license ---------------------


def test_local_tap_installs_this_checkouts_zipapps(zipapps: dict[str, Path],
                                                   short_tmp: Path) -> None:
    """scripts/local-tap: a git repository of formulae whose file:// urls name
    dist/release/<tool>.pyz with its sha256 -- installed and tested by the harness."""
    tap = short_tmp / "tap"
    done = subprocess.run([str(REPO / "scripts/local-tap"), "--tap-dir", str(tap)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"brew tap local/remote-ollama-proxy {tap}" in done.stdout
    assert "brew install local/remote-ollama-proxy/ai-server" in done.stdout
    log = subprocess.run(["git", "-C", str(tap), "log", "--oneline"], capture_output=True,
                         text=True, check=True)
    assert len(log.stdout.splitlines()) == 1
    for tool in TOOLS:
        asset = REPO / "dist" / "release" / f"{tool}.pyz"
        formula = tap / "Formula" / f"{tool}.rb"
        text = formula.read_text()
        assert f'url "{asset.as_uri()}"' in text and "# unreleased:" not in text
        assert f'version "{tree_version()}"' in text  # none can be read from this url
        rc, report, err = run_harness(formula, asset, short_tmp / f"root-tap-{tool}")
        assert rc == 0 and report["failures"] == [], err[-3000:]
        assert report["sha256_matches"] is True
        assert report["version_output"] == f"{tool} {tree_version()}"
    again = subprocess.run([str(REPO / "scripts/local-tap"), "--tap-dir", str(tap)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0  # same tree, same build: nothing new to commit
    log = subprocess.run(["git", "-C", str(tap), "log", "--oneline"], capture_output=True,
                         text=True, check=True)
    assert len(log.stdout.splitlines()) == 1


def test_harness_rejects_a_local_url_not_named_like_the_installed_file(
        zipapps: dict[str, Path], short_tmp: Path) -> None:
    text = (REPO / "Formula" / "ai-server.rb").read_text()
    text = re.sub(r'url "[^"]*"', 'url "file:///tmp/dist/release/ai-server"', text)
    text = text.replace('  sha256 "', '  version "0.1.0"\n  sha256 "')
    formula = short_tmp / "bad-local" / "ai-server.rb"
    formula.parent.mkdir()
    formula.write_text(text)
    rc, report, _ = run_harness(formula, zipapps["ai-server"], short_tmp / "root-bad-local",
                                "--no-install")
    assert rc == 1
    assert any("does not end in /ai-server.pyz" in f for f in report["failures"])
    formula.write_text(text.replace('  version "0.1.0"\n', ""))
    rc, report, _ = run_harness(formula, zipapps["ai-server"], short_tmp / "root-bad-local2",
                                "--no-install")
    assert any(f.startswith("Missing version") for f in report["failures"]), report["failures"]


def test_the_license_the_formulae_and_the_package_announce_exists() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Permission is hereby granted" in text
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject and 'license-files = ["LICENSE"]' in pyproject
    for tool in TOOLS:
        assert '  license "MIT"\n' in (REPO / "Formula" / f"{tool}.rb").read_text()


def test_a_checkout_installs_as_a_python_distribution(zipapps: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """What `pipx install .` / `uv tool install .` do: build this checkout's wheel and install
    it with its dependencies into a venv of its own (offline here: scripts/build-zipapps has
    built the wheel from the checkout and fetched the dependencies' wheels)."""
    wheels = REPO / "build" / "wheels"
    ours = list(wheels.glob("remote_ollama_proxy-*.whl"))
    assert len(ours) == 1
    import zipfile

    names = zipfile.ZipFile(ours[0]).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names[-10:]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-index",
                           "--find-links", str(wheels), "remote-ollama-proxy"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    for tool in TOOLS:
        out = subprocess.run([str(venv / "bin" / tool), "--version"], capture_output=True,
                             text=True, timeout=60, check=False)
        assert out.stdout.strip() == f"{tool} {tree_version()}", out.stderr


def test_install_docs_put_the_truth_first() -> None:
    """While the formulae are unreleased, the install section opens by saying so and gives the
    ways that work from a checkout before the Homebrew commands that need a release."""
    text = (REPO / "README.md").read_text()
    section = text.split("<!-- install:begin -->", 1)[1].split("<!-- install:end -->", 1)[0]
    unreleased = "# unreleased:" in (REPO / "Formula" / "ai-server.rb").read_text()
    first_tap = section.index("brew tap OWNER/")
    if unreleased:
        assert "There is no release yet" in section[:first_tap]
        for way in ("pipx install .", "uv tool install .", "scripts/build-zipapps",
                    "scripts/local-tap", "brew tap local/remote-ollama-proxy"):
            assert way in section[:first_tap], way
        assert "after the first release" in section[:first_tap]


def test_release_reads_the_version_from_the_url_and_refuses_a_version_line(
        tmp_path: Path) -> None:
    rel = load_release()
    (tmp_path / "Formula").mkdir()
    text = (REPO / "Formula" / "ai-server.rb").read_text()
    (tmp_path / "Formula" / "ai-server.rb").write_text(text)
    assert rel.read_formula("ai-server", tmp_path).version == tree_version()
    (tmp_path / "Formula" / "ai-server.rb").write_text(
        text.replace('  sha256 "', f'  version "{tree_version()}"\n  sha256 "'))
    with pytest.raises(rel.ReleaseError, match="has a `version` line"):
        rel.read_formula("ai-server", tmp_path)

"""Releases: the Homebrew formulae, the changelog and the reproducible zipapps agree.

    scripts/release VERSION [--repo OWNER/NAME] [--date YYYY-MM-DD]
    scripts/release --check

`VERSION` must already be `aicommon.__version__` (bumping it is a commit of its own). The
release builds both zipapps (scripts/build-zipapps: same tree -> same sha256), copies them to
dist/release/<tool>.pyz with SHA256SUMS, points both formulae at the GitHub release assets
(homepage, url and sha256; Homebrew reads the version from the url), turns the changelog's
"Unreleased" section into the version's dated section and writes dist/release/RELEASE_NOTES.md
from it. It changes nothing unless every step before the writes succeeded, and ends by running
the check.

The formulae are in one of two states, and `--check` accepts exactly these:

- released: no `# unreleased:` marker; url is <homepage>/releases/download/v<V>/<tool>.pyz,
  the changelog has a dated section for V. If the tree's version is still V, a fresh build
  must reproduce the formulae's sha256 exactly (a changed tree needs a new version); if the
  tree has moved on to a newer version, the formulae rightly stay on the last release (the
  tap's users install from it) and there is nothing to rebuild.
- unreleased development formulae (before the first release only): a `# unreleased:` marker,
  version == the tree's version, that version neither tagged (v<V>) nor dated in the
  changelog, and a placeholder sha256 of zeros: there is no artifact to pin yet, and a hash
  of a moving tree would be stale at the next commit.

In both states the fresh build must succeed and each zipapp must report the tree's version.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("ai-server", "ai-client")
PLACEHOLDER_SHA = "0" * 64
PLACEHOLDER_OWNER = "/OWNER/"
MARKER = re.compile(r"^[ \t]*# unreleased:.*\n", re.MULTILINE)
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
UNRELEASED_HEADING = re.compile(r"^## \[Unreleased\][ \t]*$", re.MULTILINE)
SECTION_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?",
                             re.MULTILINE)


class ReleaseError(Exception):
    """A problem the person releasing must fix; printed as one line with a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class FormulaInfo:
    tool: str
    path: Path
    text: str
    homepage: str
    url: str
    version: str
    sha256: str
    unreleased: bool

    def expected_url(self, version: str | None = None, homepage: str | None = None) -> str:
        return (f"{homepage or self.homepage}/releases/download/v{version or self.version}/"
                f"{self.tool}.pyz")


@dataclass(frozen=True)
class Artifact:
    tool: str
    path: Path
    sha256: str
    size: int


def _field(text: str, name: str, path: Path) -> str:
    match = re.search(rf'^[ \t]*{name} "([^"]*)"', text, re.MULTILINE)
    if match is None:
        raise ReleaseError(f"{path.relative_to(REPO)} has no `{name}` line")
    return match.group(1)


RELEASE_URL_VERSION = re.compile(r"/releases/download/v(?P<version>[^/]+)/")


def url_version(url: str, path: Path) -> str:
    """The version Homebrew scans from a release url (its version.rb:393). The formulae carry
    no `version` line: `brew audit` calls one equal to the scanned version redundant
    (resource_auditor.rb:100-103)."""
    match = RELEASE_URL_VERSION.search(url)
    if match is None:
        raise ReleaseError(f"Formula/{path.name}: no version in the url {url}",
                           "the url must be <homepage>/releases/download/vX.Y.Z/<tool>.pyz")
    return match.group("version")


def read_formula(tool: str, root: Path = REPO) -> FormulaInfo:
    path = root / "Formula" / f"{tool}.rb"
    text = path.read_text(encoding="utf-8")
    if re.search(r'^[ \t]*version "', text, re.MULTILINE):
        raise ReleaseError(f"Formula/{tool}.rb has a `version` line",
                           "drop it: Homebrew reads the version from the release url, and "
                           "`brew audit` calls a repeated one redundant")
    url = _field(text, "url", path)
    return FormulaInfo(tool, path, text, _field(text, "homepage", path), url,
                       url_version(url, path), _field(text, "sha256", path),
                       MARKER.search(text) is not None)


def tree_version(root: Path = REPO) -> str:
    text = (root / "src" / "aicommon" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise ReleaseError("src/aicommon/__init__.py has no __version__")
    return match.group(1)


def version_key(version: str) -> tuple[int, ...]:
    """X.Y.Z as a tuple; anything after the numbers (a pre-release) sorts before X.Y.Z."""
    numbers = re.match(r"^(\d+)\.(\d+)\.(\d+)(.*)$", version)
    if numbers is None:
        raise ReleaseError(f"version {version!r} is not X.Y.Z[suffix]")
    parts = tuple(int(numbers.group(i)) for i in (1, 2, 3))
    return (*parts, 0 if numbers.group(4) else 1)


def changelog_sections(root: Path = REPO) -> dict[str, str | None]:
    """{version: date or None}; "Unreleased" maps to None."""
    path = root / "CHANGELOG.md"
    if not path.exists():
        raise ReleaseError("CHANGELOG.md is missing", "create it with a `## [Unreleased]` section")
    text = path.read_text(encoding="utf-8")
    return {m.group("version"): m.group("date") for m in SECTION_HEADING.finditer(text)}


def git_dir(root: Path) -> Path | None:
    dot_git = root / ".git"
    if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
        line = dot_git.read_text(encoding="utf-8").strip()
        return (root / line.removeprefix("gitdir:").strip()).resolve()
    return dot_git if dot_git.is_dir() else None


def tag_exists(version: str, root: Path = REPO) -> bool:
    """Whether v<version> is a tag, read from the ref files (no git process needed)."""
    gdir = git_dir(root)
    if gdir is None:
        return False
    common = gdir
    if (gdir / "commondir").exists():
        common = (gdir / (gdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    ref = f"refs/tags/v{version}"
    if (common / ref).exists():
        return True
    packed = common / "packed-refs"
    if packed.exists():
        return any(line.split(" ", 1)[-1].strip() == ref
                   for line in packed.read_text(encoding="utf-8").splitlines()
                   if not line.startswith(("#", "^")))
    return False


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(root: Path = REPO) -> dict[str, Artifact]:
    print("release: building the zipapps (scripts/build-zipapps)", file=sys.stderr, flush=True)
    done = subprocess.run([str(root / "scripts" / "build-zipapps")], cwd=root, text=True,
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise ReleaseError("scripts/build-zipapps failed: " + done.stderr.strip()[-1500:])
    found: dict[str, Artifact] = {}
    for tool in TOOLS:
        path = root / "dist" / tool
        found[tool] = Artifact(tool, path, sha256_file(path), path.stat().st_size)
    return found


def built_version(artifact: Artifact) -> str:
    """Runs the zipapp (in a throw-away HOME/SHIV_ROOT) and returns the version it reports."""
    with tempfile.TemporaryDirectory(prefix="release-run-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "SHIV_", "XDG_"))}
        env.update(HOME=home, SHIV_ROOT=str(Path(home) / "shiv"))
        done = subprocess.run([str(artifact.path), "--version"], capture_output=True, text=True,
                              env=env, timeout=120, check=False)
    words = done.stdout.split()
    if done.returncode != 0 or len(words) != 2 or words[0] != artifact.tool:
        raise ReleaseError(f"{artifact.path} --version failed: {done.stderr.strip()[-500:]}")
    return words[1]


# ---------------------------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------------------------


def formula_problems(f: FormulaInfo, tree: str, sections: dict[str, str | None], tagged: bool,
                     built_sha: str) -> list[str]:
    """The state rules of one formula (see the module docstring); pure, for tests."""
    tool, problems = f.tool, []
    if f.unreleased:
        if f.version != tree:
            problems.append(f"{tool}: the development formula says {f.version}, the tree "
                            f"is {tree} (they must match until the release)")
        if tagged:
            problems.append(f"{tool}: v{f.version} is tagged, but the formula is still "
                            f"marked unreleased: run scripts/release {f.version}")
        if sections.get(f.version):
            problems.append(f"{tool}: CHANGELOG.md dates {f.version} "
                            f"({sections[f.version]}), but the formula is marked unreleased")
        if f.sha256 != PLACEHOLDER_SHA:
            problems.append(f"{tool}: an unreleased formula carries a real-looking sha256 "
                            "(no release asset exists to match it): release, or reset it "
                            "to zeros")
        return problems
    if PLACEHOLDER_OWNER in f.homepage + "/":
        problems.append(f"{tool}: released formula still has the placeholder homepage "
                        f"{f.homepage}")
    if not sections.get(f.version):
        problems.append(f"{tool}: CHANGELOG.md has no dated `## [{f.version}] - DATE` "
                        "section for the released version")
    if version_key(tree) < version_key(f.version):
        problems.append(f"{tool}: the formula is at {f.version}, newer than the tree ({tree})")
    elif tree == f.version and built_sha != f.sha256:
        problems.append(f"{tool}: a fresh build of this tree has sha256 {built_sha}, the "
                        f"formula pins {f.sha256}: the tree changed since the {f.version} "
                        "release without a version bump (set __version__ to the next "
                        "version)")
    return problems


def check(root: Path = REPO, artifacts: dict[str, Artifact] | None = None) -> list[str]:
    """Every problem found (empty = consistent). Prints what it compared."""
    problems: list[str] = []
    formulae = {tool: read_formula(tool, root) for tool in TOOLS}
    tree = tree_version(root)
    sections = changelog_sections(root)
    versions = {f.version for f in formulae.values()}
    if len(versions) != 1:
        problems.append("the formulae disagree on the version: "
                        + ", ".join(f"{t} {f.version}" for t, f in formulae.items()))
    if len({f.unreleased for f in formulae.values()}) != 1:
        problems.append("one formula is marked unreleased and the other is not")
    if "Unreleased" not in sections:
        problems.append("CHANGELOG.md has no `## [Unreleased]` section")
    for tool, f in formulae.items():
        if not VERSION_RE.match(f.version):
            problems.append(f"{tool}: version {f.version!r} is not X.Y.Z")
        if f.url != f.expected_url():
            problems.append(f"{tool}: url is {f.url}, expected {f.expected_url()}")
        if not re.fullmatch(r"[0-9a-f]{64}", f.sha256):
            problems.append(f"{tool}: sha256 is not 64 lowercase hex digits")

    artifacts = artifacts or build(root)
    for tool, art in artifacts.items():
        got = built_version(art)
        if got != tree:
            problems.append(f"dist/{tool} reports version {got}, the tree says {tree}")
        print(f"  built   {tool:<9} {art.sha256}  {art.size} bytes  (version {got})")

    for tool, f in formulae.items():
        art = artifacts[tool]
        state = "unreleased (development)" if f.unreleased else "released"
        print(f"  formula {tool:<9} {f.sha256}  {f.version} {state}")
        problems += formula_problems(f, tree, sections, tag_exists(f.version, root), art.sha256)
        if not f.unreleased and tree != f.version and version_key(tree) > version_key(f.version):
            print(f"          {tool}: stays on the last release {f.version}; the tree is "
                  f"{tree} (unreleased), so there is nothing to rebuild and compare")
    return problems


# ---------------------------------------------------------------------------------------------
# VERSION: make a release
# ---------------------------------------------------------------------------------------------


def _sub_line(text: str, name: str, value: str) -> str:
    new, count = re.subn(rf'^([ \t]*{name} )"[^"]*"', lambda m: f'{m.group(1)}"{value}"', text,
                         count=1, flags=re.MULTILINE)
    if count != 1:
        raise ReleaseError(f"cannot find the `{name}` line to update")
    return new


def released_formula(f: FormulaInfo, version: str, homepage: str, sha: str) -> str:
    text = MARKER.sub("", f.text)
    text = _sub_line(text, "homepage", homepage)
    text = _sub_line(text, "url", f.expected_url(version, homepage))
    return _sub_line(text, "sha256", sha)


def split_unreleased(changelog: str) -> tuple[str, str, str]:
    """(text before the Unreleased body, the body, the rest from the next section on)."""
    heading = UNRELEASED_HEADING.search(changelog)
    if heading is None:
        raise ReleaseError("CHANGELOG.md has no `## [Unreleased]` section")
    following = SECTION_HEADING.search(changelog, heading.end())
    end = following.start() if following else len(changelog)
    return changelog[:heading.end()], changelog[heading.end():end], changelog[end:]


def released_changelog(changelog: str, version: str, date: str) -> tuple[str, str]:
    """(the new changelog, the released section's body)."""
    head, body, rest = split_unreleased(changelog)
    if not body.strip():
        raise ReleaseError("the changelog's Unreleased section is empty",
                           "list the changes under `## [Unreleased]` first")
    new = f"{head}\n\n## [{version}] - {date}\n\n{body.strip()}\n\n{rest.lstrip()}"
    return new.rstrip() + "\n", body.strip()


def release_notes(version: str, body: str, homepage: str, artifacts: dict[str, Artifact]) -> str:
    tap = homepage.removeprefix("https://github.com/")
    rows = "\n".join(f"| `{t}.pyz` | `{a.sha256}` | {a.size} |" for t, a in artifacts.items())
    return (f"# remote-ollama-proxy {version}\n\n{body}\n\n## Install\n\n```sh\n"
            f"brew tap {tap} {homepage}\n"
            f"brew install {tap}/ai-server   # on the Ollama machine\n"
            f"brew install {tap}/ai-client   # on each laptop\n```\n\n"
            "Both are single-file Python zipapps (shiv), built reproducibly: "
            "`scripts/build-zipapps` on the tagged tree gives these exact bytes.\n\n"
            f"| asset | sha256 | bytes |\n|---|---|---|\n{rows}\n")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def release(version: str, repo: str | None, date: str, root: Path = REPO) -> Path:
    if not VERSION_RE.match(version):
        raise ReleaseError(f"version {version!r} is not X.Y.Z")
    tree = tree_version(root)
    if tree != version:
        raise ReleaseError(f"the tree's version is {tree}, not {version}",
                           f'set __version__ = "{version}" in src/aicommon/__init__.py '
                           "(its own commit), then release")
    if tag_exists(version, root):
        raise ReleaseError(f"v{version} is already tagged", "a version is released once")
    if changelog_sections(root).get(version):
        raise ReleaseError(f"CHANGELOG.md already has a dated section for {version}")
    formulae = {tool: read_formula(tool, root) for tool in TOOLS}
    homepage = f"https://github.com/{repo}" if repo else formulae["ai-server"].homepage
    if PLACEHOLDER_OWNER in homepage + "/":
        raise ReleaseError(f"the homepage is still the placeholder {homepage}",
                           "pass --repo OWNER/NAME (the GitHub repository that hosts the tap "
                           "and its releases)")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", homepage):
        raise ReleaseError(f"homepage {homepage} is not https://github.com/OWNER/NAME")
    changelog_path = root / "CHANGELOG.md"
    changelog, body = released_changelog(changelog_path.read_text(encoding="utf-8"), version,
                                         date)
    artifacts = build(root)
    for art in artifacts.values():
        if built_version(art) != version:
            raise ReleaseError(f"{art.path} does not report version {version}")
    texts = {t: released_formula(f, version, homepage, artifacts[t].sha256)
             for t, f in formulae.items()}

    out = root / "dist" / "release"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for tool, art in artifacts.items():
        shutil.copy2(art.path, out / f"{tool}.pyz")
    (out / "SHA256SUMS").write_text("".join(f"{a.sha256}  {t}.pyz\n"
                                            for t, a in artifacts.items()), encoding="utf-8")
    (out / "RELEASE_NOTES.md").write_text(release_notes(version, body, homepage, artifacts),
                                          encoding="utf-8")
    for tool, text in texts.items():
        _write(formulae[tool].path, text)
    _write(changelog_path, changelog)

    problems = check(root, artifacts)
    if problems:
        raise ReleaseError("the release does not pass its own check: " + "; ".join(problems))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version", nargs="?", help="the version to release (X.Y.Z)")
    parser.add_argument("--check", action="store_true",
                        help="verify the formulae against a fresh build; change nothing")
    parser.add_argument("--repo", metavar="OWNER/NAME",
                        help="GitHub repository of the tap and its releases")
    parser.add_argument("--date", default=dt.datetime.now(dt.UTC).date().isoformat(),
                        help="release date for the changelog (default: today, UTC)")
    args = parser.parse_args(argv)
    if args.check == bool(args.version):
        parser.error("give either VERSION or --check")
    try:
        if args.check:
            print("release --check: formulae vs a fresh build of this tree", flush=True)
            problems = check()
            for problem in problems:
                print(f"release --check: FAIL {problem}", file=sys.stderr)
            if problems:
                return 1
            print("release --check: OK")
            return 0
        out = release(args.version, args.repo, args.date)
    except ReleaseError as err:
        hint = f" (hint: {err.hint})" if err.hint else ""
        print(f"release: error: {err.message}{hint}", file=sys.stderr)
        return 1
    rel = out.relative_to(REPO)
    print(f"released {args.version}: formulae, CHANGELOG.md and {rel}/ are ready. Next:\n"
          f"  git commit -am 'Release {args.version}' && git tag v{args.version} && git push "
          f"--tags\n  gh release create v{args.version} {rel}/ai-server.pyz "
          f"{rel}/ai-client.pyz {rel}/SHA256SUMS --notes-file {rel}/RELEASE_NOTES.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

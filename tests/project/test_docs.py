"""The documentation keeps up with the code: every module on the architecture map, no reference
to files outside the repository, every golden key described."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE_FOLDERS = [ROOT / "classify", ROOT / "gen", ROOT / "vendor" / "stylegan2_ada"]


def architecture_map() -> dict[str, set[str]]:
    """Package folder (relative, with trailing /) -> the module names its map line lists."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = text.split("## Package map", 1)[1].split("```", 2)[1]
    out: dict[str, set[str]] = {}
    for line in block.splitlines():
        if line and not line[0].isspace():
            folder, modules, *_description = re.split(r"\s{2,}", line.strip())
            out[folder] = set(modules.split())
    return out


def test_every_module_is_on_the_architecture_map():
    mapped = architecture_map()
    missing = []
    for folder in CODE_FOLDERS:
        for path in sorted(folder.rglob("*.py")):
            if path.name == "__init__.py" or "__pycache__" in path.parts:
                continue
            package = str(path.parent.relative_to(ROOT)) + "/"
            if path.stem not in mapped.get(package, set()):
                missing.append(f"{package}{path.name}")
    assert not missing, f"docs/ARCHITECTURE.md's package map lacks: {', '.join(missing)}"
    stale = [f"{pkg}{m}.py" for pkg, mods in mapped.items() for m in mods
             if not (ROOT / pkg / f"{m}.py").is_file()]
    assert not stale, ("docs/ARCHITECTURE.md's package map names modules that do not exist: "
                       f"{', '.join(stale)}")


def tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    keep = (".py", ".md", ".toml", ".sh", ".txt", ".cfg", ".yml", ".yaml")
    return [ROOT / n for n in names.splitlines() if n.endswith(keep) or n.startswith(".ci/")]


def test_the_repository_stands_alone():
    """No file points at the design notes or the spec outside the repository (docs/ENGINE.md
    states what the engine implements)."""
    outside = re.compile(r"shared/spec|\.\./shared|shared/golden|DESIGN\.md|stylegan2-ada\.md")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in tracked_text_files() if p.name != "test_docs.py"
            for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if outside.search(line)]
    assert not hits, f"references outside the repository: {', '.join(hits)}"


def test_every_golden_key_is_described():
    from safetensors import safe_open

    readme = (ROOT / "tests" / "golden" / "README.md").read_text()
    for path in sorted((ROOT / "tests" / "golden").glob("*.safetensors")):
        assert path.stem in readme, f"tests/golden/README.md does not describe {path.name}"
        with safe_open(str(path), "pt") as f:
            io_keys = [k for k in f.keys() if not k.startswith(("G.", "D.", "G_ema."))]
        undocumented = [k for k in io_keys if f"`{k}`" not in readme]
        assert not undocumented, f"tests/golden/README.md does not describe {path.name} keys {undocumented}"


def test_module_paths_cited_in_the_docs_exist():
    """README.md and docs/*.md name source files by path (`classify/model/checkpoint.py`); a
    move must update them."""
    cited = re.compile(r"\b(?:classify|gen|vendor/stylegan2_ada|scripts|tests)/[\w/]+\.(?:py|sh|toml)\b")
    stale = [f"{doc.relative_to(ROOT)}: {path}"
             for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
             for path in sorted(set(cited.findall(doc.read_text()))) if not (ROOT / path).is_file()]
    assert not stale, f"the docs cite files that do not exist: {', '.join(stale)}"


def test_report_html_embeds_only_pngs_inside_the_report_folder(tmp_path):
    """Markdown carrying user data must not inline a local file into a page."""
    from classify.core.reportdoc import parse_markdown, render_html_body

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret bytes")
    report = tmp_path / "report"
    (report / "plots").mkdir(parents=True)
    (report / "plots" / "ok.png").write_bytes(b"\x89PNG ok")
    (report / "notes.txt").write_text("private")
    md = f"![p]({secret})\n\n![q](../secret.png)\n\n![r](notes.txt)\n\n![fine](plots/ok.png)\n"
    page = render_html_body(parse_markdown(md), report)
    assert page.count("base64,") == 1 and "not embedded" in page
    import base64

    assert base64.b64encode(b"\x89PNG secret bytes").decode() not in page

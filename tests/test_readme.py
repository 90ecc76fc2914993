"""The README's Python examples run as written, and its links point at files that exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
#: The published ANI-2x files of the shared data: the README's load_pretrained("ani2x") finds them through
#: the documented environment variable (a download cannot run here).
ANI2X_FILES = ROOT.parent / "shared" / "data" / "ani2x"


def python_blocks(text: str):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("index", range(len(python_blocks(README))))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files it writes (model.pt, ethanol_painn.pt) land here
    monkeypatch.setenv("EQUINNP_ANI2X_PATH", str(ANI2X_FILES))
    monkeypatch.setenv("EQUINNP_CACHE", str(tmp_path / "cache"))  # never the user's cache
    code = python_blocks(README)[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


def test_readme_has_the_plain_pyg_training_loop():
    loops = [b for b in python_blocks(README) if "loss.backward()" in b and "DataLoader(" in b and ".fit(" in b]
    assert len(loops) == 1


@pytest.mark.parametrize("doc", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))])
def test_relative_links_resolve(doc):
    path = ROOT / doc
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{doc} links to {target}, which does not exist"

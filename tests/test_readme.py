"""The README's Python example runs as written (at a smaller epoch count)."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    code = blocks[0].replace("epochs=2000", "epochs=20")
    assert "epochs=20," in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["pred"].std.shape == (2,)
    assert torch.all(namespace["pred"].std > 0)
    assert namespace["restored"].model.spec() == namespace["model"].spec()
    assert (tmp_path / "toy.pt").is_file()

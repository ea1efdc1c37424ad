"""The one atomic-write helper: whole files or folders appear, or the old ones stay; temp names never collide."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr_safety.atomic import replace_dir_atomic, write_json_atomic, write_text_atomic


def test_json_and_text_are_written_whole_with_no_temp_left(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "metrics.json"
    write_json_atomic(target, {"a": 1, "p": Path("/x")})
    assert json.loads(target.read_text()) == {"a": 1, "p": "/x"}
    write_text_atomic(target, "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {1j: 2})  # a complex key is not JSON
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_folders_are_swapped_whole_and_a_failed_fill_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "model"

    def fill(text: str):
        def write(folder: Path) -> None:
            (folder / "weights.txt").write_text(text)
        return write

    replace_dir_atomic(target, fill("one"))
    replace_dir_atomic(target, fill("two"))
    assert (target / "weights.txt").read_text() == "two"

    def broken(folder: Path) -> None:
        (folder / "weights.txt").write_text("half")
        raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        replace_dir_atomic(target, broken)
    assert (target / "weights.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_temp_names_are_unique_per_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers of the same file never share a temp name (the old report writer used a fixed NAME.tmp)."""
    import os

    seen: list[str] = []
    real_replace = os.replace

    def spy(src, dst):  # type: ignore[no-untyped-def]
        seen.append(Path(src).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    for _ in range(3):
        write_text_atomic(tmp_path / "report.html", "x")
    assert len(set(seen)) == 3 and all(name != "report.html.tmp" for name in seen)

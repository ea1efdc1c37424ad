"""A model's key (stores and sampling streams) is its content: the same weights in another folder, rewritten at
another time, or an adapter whose config lists its modules in another order give the same key and so the same
sampled answers; changed weights give another key."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from rlvr_safety.evaluation.configs import EvalConfig
from rlvr_safety.evaluation.runner import run_eval
from rlvr_safety.models import model_fingerprint

pytestmark = pytest.mark.integration


def _copy(src: Path, dst: Path, mtime: int) -> Path:
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        os.utime(f, (mtime, mtime))
    return dst


def test_same_weights_elsewhere_and_later_share_the_key_changed_weights_do_not(tiny_model_dir: Path,
                                                                               tmp_path: Path) -> None:
    a = _copy(tiny_model_dir, tmp_path / "a", 1_000_000)
    b = _copy(tiny_model_dir, tmp_path / "elsewhere" / "b", 2_000_000)
    assert model_fingerprint(str(a)) == model_fingerprint(str(b))
    weights = next(b.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the last tensor
    weights.write_bytes(bytes(data))
    assert model_fingerprint(str(a)) != model_fingerprint(str(b))


def test_adapter_key_ignores_where_its_base_lives_and_module_order(tiny_model_dir: Path, tmp_path: Path) -> None:
    keys = []
    for i, (base_dir, modules) in enumerate([("base1", ["q_proj", "v_proj", "o_proj"]),
                                             ("deep/base2", ["o_proj", "q_proj", "v_proj"])]):
        base = _copy(tiny_model_dir, tmp_path / base_dir, 1_000_000 + i)
        adapter = tmp_path / f"adapter{i}"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text(json.dumps(
            {"base_model_name_or_path": str(base), "peft_type": "LORA", "r": 4, "target_modules": modules}))
        (adapter / "adapter_model.safetensors").write_bytes(b"same bytes")
        keys.append(model_fingerprint(str(adapter)))
    assert keys[0] == keys[1]


def test_sampled_answers_reproduce_in_a_fresh_folder_with_a_rewritten_model(tiny_model_dir: Path, tmp_path: Path,
                                                                            data_dir: Path) -> None:
    """The demo's eval samples its safety answers (temperature 1): a rerun of the same study must draw the same
    answers, although every model folder is written anew (new paths' contents equal, new file times)."""
    answers = []
    for i in range(2):
        model = _copy(tiny_model_dir, tmp_path / f"run{i}" / "model", 1_000_000 * (i + 1))
        cfg = EvalConfig(model=str(model), benchmarks=["harmbench"], data_dir=data_dir, limit=6,
                         max_new_tokens=8, temperature=1.0, seed=0, second_judges=[])
        run_eval(cfg, tmp_path / f"run{i}" / "eval", progress=False)
        with sqlite3.connect(tmp_path / f"run{i}" / "eval" / "store.sqlite") as db:
            answers.append(db.execute("select item_id, response from generations order by item_id").fetchall())
    assert len(answers[0]) == 6 and answers[0] == answers[1]

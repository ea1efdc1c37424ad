"""One rank of a multi-process rlvr run (launched by tests/test_training_distributed.py through torchrun, gloo, CPU).

It trains through the real recipe path (`rlvr.run`: store, monitors, checkpoints, the final save) with two test
hooks: the task's verifier is replaced by a reward that depends on the prompt only (the parity of the gold answer),
so a global batch has the same mean reward whatever the number of processes; and every rank appends what it did
(rewards it scored, steps it started, whether it wrote DIR/model) to OUT/trace.<rank>.jsonl. With CRASH_AT_STEP=N
rank 1 dies (os._exit) at the start of step N, like a killed process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rlvr_safety.training import common, distributed, rlvr
from rlvr_safety.training.config import load_config


def main() -> None:
    model, out, *overrides = sys.argv[1:]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    trace = out_dir / f"trace.{rank}.jsonl"
    crash_at = int(os.environ.get("CRASH_AT_STEP", "0"))

    def note(**row: Any) -> None:
        with trace.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def parity(prompts: list[Any], completions: list[Any], gold: list[str], **_: Any) -> list[float]:
        values = [1.0 if int(g) % 2 == 0 else 0.0 for g in gold]
        note(event="reward", values=values)
        return values

    parity.__name__ = "parity"
    note(event="launch", resume=os.environ.get("RESUME") == "1")
    common.task_reward = lambda task: parity  # type: ignore[assignment]

    real_save = distributed.save_model_atomic

    def traced_save(model: Any, tokenizer: Any, target: Path, *args: Any, **kwargs: Any) -> Path:
        note(event="save", target=str(target))
        return real_save(model, tokenizer, target, *args, **kwargs)

    distributed.save_model_atomic = traced_save  # type: ignore[assignment]
    real_open = common.open_store

    def traced_open(out: Path) -> Any:
        store = real_open(out)
        note(event="store", kind=type(store).__name__)
        return store

    common.open_store = traced_open  # type: ignore[assignment]

    class Trace(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            note(event="step", step=state.global_step + 1, world=distributed.world_size())
            if crash_at and state.global_step + 1 == crash_at and rank == 1:
                # killed once the previous step's checkpoint is complete (rank 0 writes trainer_state.json last)
                done = out_dir / "checkpoints" / f"checkpoint-{crash_at - 1}" / "trainer_state.json"
                deadline = time.time() + 60
                while not done.exists() and time.time() < deadline:
                    time.sleep(0.1)
                os._exit(17)

    real_build = rlvr.build_trainer

    def build(*args: Any, **kwargs: Any) -> Any:
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Trace()]
        trainer = real_build(*args, **kwargs)
        ref = trainer.ref_model
        note(event="reference", wrapped=type(ref).__name__, device=str(next(ref.parameters()).device),
             policy_device=str(next(trainer.model.parameters()).device))
        return trainer

    rlvr.build_trainer = build  # type: ignore[assignment]
    cfg = load_config("rlvr", None, [f"model={model}", *overrides])
    info = rlvr.run(cfg, out_dir, resume=os.environ.get("RESUME") == "1")  # type: ignore[arg-type]
    note(event="done", steps=info["steps"], last=info["last_metrics"])


if __name__ == "__main__":
    main()

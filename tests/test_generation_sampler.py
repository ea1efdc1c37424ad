"""The hf sampler draws from exactly the law the log-probs describe, on its own RNG stream.

The tiny model here carries a generation_config full of settings that would change that law (repetition penalty,
no-repeat n-grams, top_k=5, min_p, typical_p, suppressed tokens); the law tests first show that plain
`model.generate` does apply them, so a leak into our sampler (generation/decode.py) would make them fail.
"""

from __future__ import annotations

import pytest
import torch

from rlvr_safety.evaluation.sampling import ensure_generations
from rlvr_safety.generation.base import GenerationParams, Prompt
from rlvr_safety.generation.decode import draw, nucleus
from rlvr_safety.generation.hf import HFGenerator, batch_seed, encode_prompt
from rlvr_safety.models import resolve_model
from rlvr_safety.store import Store

PROMPTS: list[Prompt] = ["Tell me a story about a small dog.", "Hi"]


@pytest.fixture(scope="module")
def leaky(tiny_model_dir):
    loaded = resolve_model(str(tiny_model_dir))
    gc = loaded.model.generation_config
    gc.repetition_penalty = 1.3
    gc.no_repeat_ngram_size = 2
    gc.top_k = 5
    gc.min_p = 0.05
    gc.typical_p = 0.9
    gc.do_sample = True
    gc.temperature = 0.5
    return HFGenerator(loaded.model, loaded.tokenizer)


def test_the_sampler_draws_the_categorical_law():
    """decode.draw inverts the CDF: frequencies match the probabilities, a zero-probability token never comes."""
    torch.manual_seed(0)
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2, 0.0]]).repeat(20000, 1)
    counts = torch.bincount(draw(probs), minlength=5).double() / 20000
    assert counts[1] == 0 and counts[4] == 0
    assert torch.allclose(counts, probs[0].double(), atol=0.015)  # 3 sigma of a 20000-draw frequency is < 0.011
    assert torch.equal(draw(torch.tensor([[0.0, 0.0, 1.0]])), torch.tensor([2]))


def test_nucleus_keeps_the_smallest_set_above_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(nucleus(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 >= 0.7
    assert torch.isfinite(nucleus(logits, 0.1)).tolist() == [[True, False, False, False]]  # the top token stays


def _manual(gen: HFGenerator, prompt_ids: list[int], steps: int, seed: int | None) -> list[int]:
    """Greedy (seed None) or a draw from the softmax of raw logits, full forward every step."""
    ids, out = list(prompt_ids), []
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        for _ in range(steps):
            logits = gen.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            tok = int(logits.argmax()) if seed is None else int(draw(torch.softmax(logits, -1)[None])[0])
            if tok in gen.eos:
                break
            ids.append(tok)
            out.append(tok)
    return out


def test_greedy_is_argmax_of_raw_logits(leaky, monkeypatch):
    steps = 10
    manual = [_manual(leaky, encode_prompt(leaky.tokenizer, p), steps, None) for p in PROMPTS]
    # Suppressing the first argmax token makes a leak of the model's config visible for certain.
    monkeypatch.setattr(leaky.model.generation_config, "suppress_tokens", [manual[0][0]])
    ids = torch.tensor([encode_prompt(leaky.tokenizer, PROMPTS[0])])
    plain = leaky.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=steps)[0, ids.shape[1]:].tolist()
    assert plain[:len(manual[0])] != manual[0]

    outs = leaky.generate(PROMPTS, GenerationParams(max_new_tokens=steps, batch_size=2), progress=False)
    assert [list(c.token_ids) for c in outs] == manual


def test_samples_follow_raw_softmax(leaky, monkeypatch):
    params = GenerationParams(max_new_tokens=12, temperature=1.0, seed=5, batch_size=1)
    prompt_ids = encode_prompt(leaky.tokenizer, PROMPTS[0])
    seed = batch_seed(params.seed, params.stream, 0, [(prompt_ids, 0)])
    manual = _manual(leaky, prompt_ids, params.max_new_tokens, seed)
    monkeypatch.setattr(leaky.model.generation_config, "suppress_tokens", [manual[0]])
    ids = torch.tensor([prompt_ids])
    torch.manual_seed(seed)
    plain = leaky.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=params.max_new_tokens)[0, ids.shape[1]:].tolist()
    assert plain[:len(manual)] != manual  # the model's top_k=5 etc. would change the draws

    out = leaky.generate([PROMPTS[0]], params, progress=False)
    assert list(out[0].token_ids) == manual


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generate_leaves_the_callers_rng_alone(leaky, temperature):
    params = GenerationParams(max_new_tokens=5, temperature=temperature, n=2, seed=3)
    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    leaky.generate(PROMPTS, params, progress=False)
    assert torch.equal(torch.rand(4), expected)


def test_batch_seeds_differ_by_stream_position_and_content():
    rows = [([1, 2, 3], 0), ([4, 5], 1)]
    base = batch_seed(0, "", 0, rows)
    assert base == batch_seed(0, "", 0, [([1, 2, 3], 0), ([4, 5], 1)])
    others = {batch_seed(1, "", 0, rows), batch_seed(0, "c2", 0, rows), batch_seed(0, "", 1, rows),
              batch_seed(0, "", 0, rows[::-1]), batch_seed(0, "", 0, [([1, 2, 3], 1), ([4, 5], 1)])}
    assert base not in others and len(others) == 5
    assert all(0 <= s < 2 ** 63 for s in others)


def test_chunks_draw_independent_noise(leaky, tmp_path):
    """Two items with the same prompt in different chunks used to get the same seed, hence the same sample."""
    items = [("a", "Hello there"), ("b", "Hello there"), ("c", "Hi")]
    params = GenerationParams(max_new_tokens=8, temperature=1.0, n=2, seed=0, batch_size=2)

    def run(name: str, model_key: str = "m", p: GenerationParams = params) -> list[tuple[str, ...]]:
        with Store(tmp_path / f"{name}.sqlite") as store:
            rows = ensure_generations(store, lambda: leaky, model_key, "bench", items, p, chunk=1, progress=False)
        return [tuple(r.response for r in rows[k:k + 2]) for k in range(0, len(rows), 2)]

    first = run("one")
    assert first[0] != first[1]  # same prompt, another chunk: another draw
    assert run("two") == first  # a given seed reproduces
    assert run("three", model_key="ref") != first  # another model never shares the policy's noise
    assert run("four", p=GenerationParams(max_new_tokens=8, temperature=1.0, n=2, seed=1, batch_size=2)) != first


def test_stream_is_not_in_the_store_key():
    assert GenerationParams(stream="x").key() == GenerationParams().key()
    # Keys written before `stream` existed still match, so existing stores keep their rows.
    assert GenerationParams().key() == "14a9877142732724"
    assert GenerationParams(max_new_tokens=64, temperature=1.0, n=4, seed=7, batch_size=3).key() == "d64653f129e278ae"
    assert GenerationParams(seed=1).key() != GenerationParams().key()


def test_config_hidden_under_a_peft_adapter(tiny_model_dir):
    """Under a PEFT wrapper the sampler still reads nothing of the model's generation_config: a fresh LoRA adapter
    (B = 0) leaves the model unchanged, so its greedy answers are the raw argmax ones despite the leaky config."""
    from peft import LoraConfig, get_peft_model

    loaded = resolve_model(str(tiny_model_dir))
    base = loaded.model
    plain = HFGenerator(base, loaded.tokenizer)
    expected = [_manual(plain, encode_prompt(loaded.tokenizer, p), 6, None) for p in PROMPTS]
    base.generation_config.repetition_penalty = 1.3
    base.generation_config.no_repeat_ngram_size = 2
    own = base.generation_config
    wrapped = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    gen = HFGenerator(wrapped, loaded.tokenizer)
    outs = gen.generate(PROMPTS, GenerationParams(max_new_tokens=6), progress=False)
    assert [list(c.token_ids) for c in outs] == expected
    assert base.generation_config is own and wrapped.generation_config is own

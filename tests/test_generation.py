"""Batched generation must equal one-at-a-time generation; token counts and finish reasons must be right."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlvr_safety.errors import UserError
from rlvr_safety.generation.base import GenerationParams, get_generator
from rlvr_safety.generation.hf import HFGenerator, encode_prompt, length_batches
from rlvr_safety.generation.logprobs import completion_logprobs
from rlvr_safety.models import resolve_model

PROMPTS = ["What is 2+2?", "Tell me a story about a very small dog who lived by the sea.", "Hi",
           "List three colours.", "Explain photosynthesis in one long sentence please, with detail."]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    loaded = resolve_model(str(tiny_model_dir))
    return HFGenerator(loaded.model, loaded.tokenizer)


def test_batched_greedy_equals_one_at_a_time(tiny):
    params = GenerationParams(max_new_tokens=12, batch_size=8)
    batched = tiny.generate(PROMPTS, params, progress=False)
    single = [tiny.generate([p], GenerationParams(max_new_tokens=12, batch_size=1), progress=False)[0]
              for p in PROMPTS]
    assert [c.token_ids for c in batched] == [c.token_ids for c in single]
    assert [c.text for c in batched] == [c.text for c in single]


def test_length_batches_bound_rows_and_padding():
    lengths = [40, 370, 55, 60, 41, 230, 45, 900]
    # batch_size alone: consecutive chunks of the longest-first order (what the demo's eval did before)
    assert length_batches(lengths, 3, None) == [[7, 1, 5], [3, 2, 6], [4, 0]]
    batches = length_batches(lengths, 64, 2.0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every row once
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 2.0 * sum(lengths[i] for i in b)
    # 900, 370, 230: 2700 padded <= 2 x 1500 real; + 60 would be 3600 > 2 x 1560; the short ones together
    assert batches == [[7, 1, 5], [3, 2, 6, 4, 0]]
    assert length_batches([74] * 5 + [55] * 55, 64, 2.0) == [list(range(60))]  # similar lengths: one batch
    with pytest.raises(UserError, match="max_padding"):
        GenerationParams(max_padding=0.5)
    assert GenerationParams(max_padding=1.5).key() == GenerationParams().key()  # it picks the draw, not the law


def test_greedy_under_a_padding_bound_equals_batch_size_alone(tiny):
    plain = tiny.generate(PROMPTS, GenerationParams(max_new_tokens=12, batch_size=8), progress=False)
    budget = tiny.generate(PROMPTS, GenerationParams(max_new_tokens=12, batch_size=8, max_padding=1.0),
                           progress=False)
    assert [c.token_ids for c in budget] == [c.token_ids for c in plain]  # same rows, same order, more batches


def test_counts_order_and_finish_reason(tiny):
    params = GenerationParams(max_new_tokens=7, n=3, temperature=1.0, seed=3, batch_size=4)
    outs = tiny.generate(PROMPTS, params, progress=False)
    assert len(outs) == len(PROMPTS) * 3
    for k, c in enumerate(outs):
        prompt = PROMPTS[k // 3]
        assert c.prompt_tokens == len(encode_prompt(tiny.tokenizer, prompt))
        assert c.completion_tokens == len(c.token_ids) <= 7
        assert (c.finish_reason == "length") == (c.completion_tokens == 7 and tiny.tokenizer.eos_token_id not in
                                                c.token_ids)
    again = tiny.generate(PROMPTS, params, progress=False)
    assert [c.token_ids for c in again] == [c.token_ids for c in outs]  # seeded sampling reproduces


def test_stop_at_eos_is_per_sequence(tiny):
    """A row that draws an EOS id is cut there ("stop"); the others run to the limit ("length"). One row per batch,
    so each row's draws do not depend on which rows are still in its batch. (That a stopped row leaves a batch
    with its KV cache rows, the others keeping theirs, is checked by the log-prob test below: a misaligned cache
    would score later tokens wrongly.)"""
    params = GenerationParams(max_new_tokens=6, temperature=1.0, seed=2, batch_size=1)
    free = tiny.generate(PROMPTS, params, progress=False)
    # a token some answer draws first at position k >= 1 now ends that answer there
    k, row = max((k, r) for r, c in enumerate(free) for k in range(1, len(c.token_ids))
                 if c.token_ids[k] not in c.token_ids[:k])
    stopper = HFGenerator(tiny.model, tiny.tokenizer)
    stopper.eos = tiny.eos | {free[row].token_ids[k]}
    outs = stopper.generate(PROMPTS, params, progress=False)
    assert outs[row].token_ids == free[row].token_ids[:k] and outs[row].finish_reason == "stop"
    for before, after in zip(free, outs, strict=True):  # every row agrees with its free run up to its own stop
        cut = next((j for j, t in enumerate(before.token_ids) if t in stopper.eos), None)
        assert after.token_ids == before.token_ids[:cut]
        assert after.finish_reason == ("length" if cut is None and len(before.token_ids) == 6 else "stop")
    assert any(c.finish_reason == "length" for c in outs)


def test_sampling_records_the_logprobs_a_forward_pass_gives(tiny):
    """At temperature 1 in float32 the sampler's recorded log-probs (token terms, then the stop term) equal
    completion_logprobs' forward pass; greedy or tempered sampling and bf16 weights record none."""
    params = GenerationParams(max_new_tokens=8, n=2, temperature=1.0, seed=5, batch_size=3)
    first = tiny.generate(PROMPTS, params, progress=False)
    # a generator whose EOS set also holds tokens these samples drew early, so that some rows stop
    stopper = HFGenerator(tiny.model, tiny.tokenizer)
    stopper.eos = tiny.eos | {first[0].token_ids[2]}
    outs = stopper.generate(PROMPTS, params, progress=False)
    assert any(c.finish_reason == "stop" for c in outs) and any(c.finish_reason == "length" for c in outs)
    prompt_ids = [encode_prompt(tiny.tokenizer, p) for p in PROMPTS for _ in range(2)]
    want = completion_logprobs(tiny.model, prompt_ids, [list(c.token_ids) for c in outs],
                               [c.finish_reason == "stop" for c in outs], sorted(stopper.eos), stopper.pad_id)
    for c, lp in zip(outs, want, strict=True):
        assert c.logprobs is not None and len(c.logprobs) == len(lp)
        np.testing.assert_allclose(np.array(c.logprobs), lp, atol=1e-4)
    for other in (GenerationParams(max_new_tokens=4), GenerationParams(max_new_tokens=4, temperature=0.7)):
        assert all(c.logprobs is None for c in tiny.generate(PROMPTS[:2], other, progress=False))
    bf16 = HFGenerator(copy.deepcopy(tiny.model).to(torch.bfloat16), tiny.tokenizer)
    assert all(c.logprobs is None for c in bf16.generate(PROMPTS[:2], params, progress=False))


def test_logprobs_match_manual_forward(tiny):
    outs = tiny.generate(PROMPTS[:3], GenerationParams(max_new_tokens=6), progress=False)
    prompt_ids = [encode_prompt(tiny.tokenizer, p) for p in PROMPTS[:3]]
    comp_ids = [list(c.token_ids) for c in outs]
    lps = completion_logprobs(tiny.model, prompt_ids, comp_ids, [False] * 3, [], tiny.pad_id, batch_size=2)
    for p, c, lp in zip(prompt_ids, comp_ids, lps, strict=True):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logits = tiny.model(input_ids=ids).logits[0].float()
        manual = torch.log_softmax(logits, -1)[len(p) - 1:-1].gather(-1, torch.tensor(c)[:, None])[:, 0]
        np.testing.assert_allclose(lp, manual.double().numpy(), atol=1e-4)


def test_logprobs_batched_rows_of_mixed_lengths_with_stop_terms(tiny):
    """One batch holds completions of different lengths (one empty), some stopped: each row's log-probs and stop
    term equal a forward of that row alone."""
    prompt_ids = [encode_prompt(tiny.tokenizer, p) for p in PROMPTS[:4]]
    comp_ids = [[5, 9, 11, 3, 7], [], [8, 8], [4, 6, 2]]
    stopped = [True, True, False, True]
    eos = [tiny.tokenizer.eos_token_id, 0]
    lps = completion_logprobs(tiny.model, prompt_ids, comp_ids, stopped, eos, tiny.pad_id, batch_size=4)
    for p, c, stop, lp in zip(prompt_ids, comp_ids, stopped, lps, strict=True):
        with torch.no_grad():
            ls = torch.log_softmax(tiny.model(input_ids=torch.tensor([p + c])).logits[0].float(), -1)
        manual = [float(ls[len(p) - 1 + t, tok]) for t, tok in enumerate(c)]
        if stop:
            manual.append(float(torch.logsumexp(ls[-1, eos], 0)))
        np.testing.assert_allclose(lp, manual, atol=1e-4)


def test_bad_params_and_backend():
    with pytest.raises(UserError):
        GenerationParams(max_new_tokens=0)
    with pytest.raises(UserError):
        GenerationParams(top_p=0)
    with pytest.raises(UserError, match="unknown generation backend"):
        get_generator("nope", "default")

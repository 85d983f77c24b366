"""What a training window sends back, within the device's return limits (8 files, 16 MiB each).

The FP16 release file (~11 MB) ships; continuing training from it would lose the float32 low
bits, so the float32 state (~23 MB, over the per-file limit) comes back split into two safetensors
files by key, each a plain state-dict fragment; ``python -m dagl.train.window join`` (or
:func:`join_float32`) puts them back together bit for bit.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..weights import WeightsError

FLOAT32_PARTS = 2
#: The device returns files of at most 16 MiB; a part must stay under it with room to spare.
PART_LIMIT_BYTES = 15 * 2**20


def part_names(stem: str, parts: int = FLOAT32_PARTS) -> list[str]:
    return [f"{stem}-fp32.part{i + 1}.safetensors" for i in range(parts)]


def split_state(state: Mapping[str, torch.Tensor], parts: int = FLOAT32_PARTS) -> list[dict[str, torch.Tensor]]:
    """Keys dealt into ``parts`` groups of about equal bytes (largest tensors first, to the lightest)."""
    groups: list[dict[str, torch.Tensor]] = [{} for _ in range(parts)]
    sizes = [0] * parts
    for key in sorted(state, key=lambda k: -state[k].numel()):
        index = sizes.index(min(sizes))
        groups[index][key] = state[key].detach().to("cpu", torch.float32).contiguous()
        sizes[index] += state[key].numel() * 4
    if max(sizes) > PART_LIMIT_BYTES:
        raise ValueError(f"a float32 part would be {max(sizes) / 2**20:.1f} MiB, over the return limit")
    return groups


def _save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.chmod(0o644)
    tmp.replace(path)
    return path


def write_float32_parts(state: Mapping[str, torch.Tensor], folder: Path, stem: str,
                        metadata: Mapping[str, str]) -> list[Path]:
    """The float32 state as :data:`FLOAT32_PARTS` files in ``folder``, each naming its place."""
    folder.mkdir(parents=True, exist_ok=True)
    groups = split_state(state)
    return [_save(group, folder / name, {**metadata, "dagl.part": f"{i + 1}/{len(groups)}"})
            for i, (group, name) in enumerate(zip(groups, part_names(stem, len(groups))))]


def join_float32(parts: Sequence[Path], output: Path) -> Path:
    """One float32 safetensors file from the parts (all of them, each once), metadata kept."""
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    seen: dict[str, str] = {}
    metadata: dict[str, str] = {}
    for path in parts:
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
                tensors.update({k: fh.get_tensor(k) for k in fh.keys()})
        except (OSError, ValueError) as exc:
            raise WeightsError(f"cannot read {path}: {exc}") from None
        place = meta.pop("dagl.part", "")
        if "/" not in place:
            raise WeightsError(f"{path} is not a part of a float32 state (no dagl.part metadata)")
        seen[place.split("/")[0]] = place.split("/")[1]
        metadata.update(meta)
    counts = set(seen.values())
    if len(counts) != 1 or sorted(seen, key=int) != [str(i + 1) for i in range(int(counts.pop()))]:
        raise WeightsError(f"parts {sorted(seen)} of {sorted(set(seen.values()))} do not make one whole state")
    output.parent.mkdir(parents=True, exist_ok=True)
    return _save(tensors, output, metadata)


def copy_into(files: Sequence[Path], folder: Path) -> list[Path]:
    """Copy ``files`` into the returned folder, each atomically (a cut-short window keeps whole files)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in files:
        target = folder / path.name
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
        out.append(target)
    return out

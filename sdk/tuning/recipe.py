"""Recipes: what a tune trial did, as a JSON file that `edgekit convert MODEL --recipe FILE` (and
``edgekit.convert(model, recipe=FILE)``) replays to the same model: the target, convert's keywords, the runtime
settings it was measured with, the calibration samples (an .npz beside the recipe, checked by hash) and the
numbers the tune measured.

{"edgekit_recipe": 1, "source_sha256": ..., "target": ..., "convert": {...}, "runtime": {...},
 "calibration": {"file": "NAME.calibration.npz", "sha256": ..., "samples": N, "from": ...} | null, "metrics": {...}}
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgekit.errors import InputError

VERSION = 1
HINT = "write the recipe with edgekit tune (TuneResult.write_recipe)"


def write_recipe(recipe: dict, path, output_dir) -> Path:
    """Write ``recipe`` to ``path``; a calibrated trial's samples are copied beside it from the tune's cache."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = json.loads(json.dumps(recipe, default=str))
    cal = rec.get("calibration")
    if cal:
        src = Path(output_dir) / "cache" / cal["cache_key"] / "calibration.npz"
        if not src.is_file():
            raise InputError(f"the calibration samples of this trial are gone from {src.parent}",
                             "rerun the tune with the same output_dir, or keep its cache folder")
        name = f"{path.stem}.calibration.npz"
        shutil.copyfile(src, path.parent / name)
        cal["file"] = name
    path.write_text(json.dumps(rec, indent=2))
    return path


def read_recipe(path) -> dict:
    p = Path(path)
    try:
        rec = json.loads(p.read_text())
    except OSError as e:
        raise InputError(f"cannot read the recipe {p}: {e.strerror or e}", HINT) from e
    except ValueError as e:
        raise InputError(f"{p.name} is not a JSON recipe: {e}", HINT) from e
    if not isinstance(rec, dict) or rec.get("edgekit_recipe") != VERSION:
        raise InputError(f"{p.name} is not an edgekit recipe (version {VERSION})", HINT)
    for key in ("target", "convert"):
        if key not in rec:
            raise InputError(f"the recipe {p.name} has no '{key}'", HINT)
    return rec


def calibration_of(rec: dict, recipe_path: Path):
    """The recipe's calibration samples (a dict of arrays), checked against the hash it recorded."""
    import numpy as np

    from .cache import arrays_sha256

    cal = rec.get("calibration")
    if not cal:
        return None
    f = recipe_path.parent / cal.get("file", "")
    if not cal.get("file") or not f.is_file():
        raise InputError(f"the recipe's calibration samples are missing ({f.name})",
                         "keep the .calibration.npz written beside the recipe, or pass calibration=")
    with np.load(f, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if arrays_sha256(arrays) != cal["sha256"]:
        raise InputError(f"{f.name} is not the calibration data the recipe was tuned with (hash differs)",
                         "use the file written beside the recipe")
    return arrays


def replay(recipe, model, targets, calibration, kwargs: dict) -> tuple[list[str], dict]:
    """(targets, convert keywords) for ``edgekit.convert(model, recipe=...)``: the recipe's, over ``kwargs``.
    The source must be the file the recipe was tuned on (same sha256)."""
    import os

    p = Path(recipe)
    rec = read_recipe(p)
    if targets not in (None, [], (), "") and list(targets if not isinstance(targets, str) else targets.split(",")
                                                  ) != [rec["target"]]:
        raise InputError(f"the recipe is for target {rec['target']}, not {targets}",
                         "leave the targets out when replaying a recipe")
    if isinstance(model, (str, os.PathLike)) and rec.get("source_sha256"):
        from edgekit.formats import detect

        from .cache import file_sha256

        if file_sha256(detect(model).files) != rec["source_sha256"]:
            raise InputError(f"{Path(model).name} is not the model the recipe was tuned on (sha256 differs)",
                             "replay the recipe on the same source file")
    out = dict(kwargs)
    conv = dict(rec["convert"])
    if "input_shapes" in conv:
        conv["input_shapes"] = {k: tuple(v) for k, v in conv["input_shapes"].items()}
    out.update(conv)
    if calibration is None:
        calibration = calibration_of(rec, p)
    out["calibration"] = calibration
    if conv.get("keep_float"):  # the tune ranked the layers on its calibration samples: rank on the same ones
        out.update(sample=calibration, verify=True)
    return [rec["target"]], out

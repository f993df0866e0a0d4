"""What a PyTorch pickle (`torch.save`) holds, read from its opcodes without unpickling (stdlib only).

Users bring three kinds of `.pt`/`.pth` files: a pickled ``nn.Module`` (loads with its class importable, and with
trust), a ``state_dict`` or training checkpoint (weights only: no model to convert), and a module pickled from a
script (its class lives in ``__main__`` of a program that is gone). The last two can never be converted, with or
without trust, so edgekit names them and says what to export instead, before any unpickling.
"""

from __future__ import annotations

import importlib.util
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# globals a plain tensor container needs (torch.save of a state_dict or a checkpoint dict)
_WEIGHT_GLOBALS = ("collections.OrderedDict", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
                   "torch._utils._rebuild_qtensor", "torch._tensor._rebuild_from_type", "torch.Size",
                   "torch.device", "torch.dtype", "torch.serialization._get_layout", "builtins.set",
                   "torch._C._nn", "_codecs.encode", "torch.storage.", "numpy.", "builtins.slice")
_STORAGE_SUFFIX = "Storage"
_STANDARD = ("torch.", "builtins.", "copyreg.", "collections.", "_codecs.", "numpy.")
_CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model", "net", "model_ema")
EXPORT_HINT = ("export a program with shapes: torch.export.save(torch.export.export(model.eval(), (example,)), "
               "'model.pt2'), then `edgekit convert model.pt2 --trust-code`")


@dataclass
class PickleScan:
    globals: list[str] = field(default_factory=list)  # "module.name" in order of first use
    strings: list[str] = field(default_factory=list)  # string constants (dict keys of a state_dict)

    @property
    def weights_only(self) -> bool:
        return all(_is_weight(g) for g in self.globals)

    @property
    def classes(self) -> list[str]:
        return [g for g in self.globals if not _is_weight(g) and not g.startswith(_STANDARD)]

    def tensor_keys(self) -> list[str]:
        return [s for s in self.strings if s.endswith((".weight", ".bias", "running_mean"))]


def _is_weight(g: str) -> bool:
    return g.startswith(_WEIGHT_GLOBALS) or (g.startswith("torch.") and g.endswith(_STORAGE_SUFFIX))


def _pickle_bytes(path: Path) -> bytes | None:
    """The main pickle of a torch.save file: `*/data.pkl` in the zip format, or the file itself (legacy)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            return z.read(names[0]) if names else None
    data = path.read_bytes()
    return data if data[:1] == b"\x80" else None


def scan_pickle(path: Path) -> PickleScan | None:
    """The globals and strings a pickle references, or None when the file is not a pickle this can read."""
    data = _pickle_bytes(Path(path))
    if data is None:
        return None
    scan, start = PickleScan(), 0
    for _ in range(5):  # the legacy format is several pickles in a row (magic, version, info, object, keys)
        end = _scan_one(data, start, scan)
        if end is None or end >= len(data) or data[end:end + 1] != b"\x80":
            break
        start = end
    return scan if scan.globals or scan.strings else None


def _scan_one(data: bytes, start: int, scan: PickleScan) -> int | None:
    """Add one pickle's globals and strings to ``scan``; the offset after its STOP, or None if it is cut short."""
    import io

    memo, recent = {}, []
    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        for op, arg, pos in pickletools.genops(stream):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING",
                           "BINSTRING", "STRING"):
                recent.append(arg)
                scan.strings.append(arg)
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and recent:
                memo[arg] = recent[-1]
            elif op.name == "MEMOIZE" and recent:
                memo[len(memo)] = recent[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
                recent.append(memo[arg])
            elif op.name in ("GLOBAL", "INST"):
                _add(scan, arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(recent) >= 2:
                _add(scan, f"{recent[-2]}.{recent[-1]}")
            elif op.name == "STOP":
                return pos + 1
    except (ValueError, EOFError):  # truncated or not a pickle: the loader reports it
        return None
    return None


def _add(scan: PickleScan, g: str) -> None:
    import _compat_pickle  # protocol-2 pickles name Python 2 modules (__builtin__, copy_reg)

    module, _, attr = g.rpartition(".")
    g = f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{attr}"
    if g not in scan.globals:
        scan.globals.append(g)


def not_a_model(path: Path) -> tuple[str, str] | None:
    """(message, hint) when the pickle at ``path`` can never load as a model here, whatever the trust: weights only
    (a state_dict or checkpoint), or a module whose class is defined in the saving script or an uninstalled
    package. None when it may be a loadable module (it still needs trust to be unpickled)."""
    scan = scan_pickle(path)
    if scan is None or not scan.globals:
        return None
    name = Path(path).name
    if scan.weights_only:
        keys = scan.tensor_keys()
        example = f" (e.g. '{keys[0]}')" if keys else ""
        key = next((s for s in scan.strings if s in _CHECKPOINT_KEYS), None)
        kind = f"a training checkpoint (state_dict under '{key}')" if key else "a state_dict"
        load = f"torch.load('{name}')" + (f"['{key}']" if key else "")
        return (f"{name} holds {kind}: {len(keys)} weight tensors{example} and no model code, nothing to convert",
                f"build the model in Python, model.load_state_dict({load}), then " + EXPORT_HINT)
    for cls in scan.classes:
        module, _, attr = cls.rpartition(".")
        if module.split(".")[0] == "__main__":
            return (f"{name} is a pickled {attr} whose class was defined in the script that saved it (__main__), "
                    "so it cannot be unpickled anywhere else",
                    f"in that script, after building {attr}: " + EXPORT_HINT)
        top = module.split(".")[0]
        if top and not _importable(top):
            return (f"{name} is a pickled {attr} from the module '{module}', which is not installed here",
                    f"install the package that defines {module}, or where it is installed: " + EXPORT_HINT)
    return None


def _importable(top: str) -> bool:
    """Whether a top-level module can be found, without importing it."""
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False

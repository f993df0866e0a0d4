"""Compression as registered passes: typed options, declared capabilities, and a check that runs before any
conversion starts.

``CompressOptions`` says what compression to apply; ``ConvertOptions`` (base.py) says how to convert and holds an
optional ``compress``, so the fp32 counterpart of a compressed target is simply ``compress=None``.

fp16 is a *conversion* precision, not a compression: the exporters write fp16 weights themselves
(``ConvertOptions(precision="fp16")``), so ``CompressOptions(precision="fp16")`` is an error that says so.

One pass per (target format, technique) is registered here by its module (compress_onnx, compress_openvino,
compress_coreml, compress_tflite), as Olive's pass manifest and onnx-ir's ``PassBase`` do it: the pass declares
what it honours (the modifiers ``per_channel``/``int8_io``), what it needs (packages, the extra, calibration data,
a platform) and whether it runs the model; ``requires(options)`` refuses what it cannot honour before any
conversion starts, ``requires_model(before, options)`` checks the converted model before the pass runs, and
``ensures(before, after, options)`` checks that the pass had an effect (compress_run.py also checks that it
wrote only under its output folder). Registering a second pass for the same (target, technique) is an error.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

from edgekit.errors import ConversionError, InputError, MissingDependencyError
from edgekit.formats import Format

PALETTIZE_BITS = (1, 2, 3, 4, 6, 8)
WEIGHT_BITS = (8, 4)
PRECISIONS = ("int8", "int8-dynamic")  # compression precisions; fp32/fp16 are the conversion's
# techniques, in the order they are applied (coremltools' joint compression prunes first)
PRUNE, PALETTIZE, INT8, INT8_WEIGHTS, INT4_WEIGHTS = "prune", "palettize", "int8", "int8-weights", "int4-weights"
# options that change a technique, with their defaults (a pass lists those it applies in ``honours``)
MODIFIERS = {"per_channel": True, "int8_io": False, "calibrate_method": None, "activation_type": None,
             "quant_format": None, "keep_float": 0, "preset": None, "smooth_quant": False}
CHOICES = {"calibrate_method": ("minmax", "entropy", "percentile"), "activation_type": ("u8", "s8"),
           "quant_format": ("qdq", "qoperator"), "preset": ("performance", "mixed")}
MODULES = ("compress_onnx", "compress_openvino", "compress_coreml", "compress_tflite", "compress_executorch")


class OptionError(InputError, ConversionError):
    """A compression option that is invalid or that a target cannot honour. The user's to fix (an InputError:
    exit code 2, raised before any work); also a ConversionError, which the compress_* functions raised before."""

    default_hint = "drop the option, or pick a target that supports it"

    def __init__(self, message: str, hint: str | None = None, *, target: str | None = None,
                 option: str | None = None):
        super().__init__(message, hint)
        self.target, self.option = target, option


def _precision(word) -> str | None:
    if word is None:
        return None
    w = str(word).strip().lower()
    if w in PRECISIONS:
        return w
    from edgekit.precision import normalize

    try:
        n = normalize(w)
    except InputError:
        raise OptionError(f"unknown precision '{word}'", "choose one of: fp32, fp16, int8, int8-dynamic",
                          option="precision") from None
    if n == "fp32":
        return None
    if n == "int8":
        return "int8"
    if n == "fp16":
        raise OptionError("fp16 is a conversion precision, not a compression",
                          "ask the conversion for it: ConvertOptions(precision='fp16') (CLI: --precision fp16)",
                          option="precision")
    hint = "use weights_only_bits=4 (CLI: --weights-only-bits 4)" if n == "int4" else \
        "bf16 is a runtime's compute choice (OpenVINO's inference hint), not a file precision"
    raise OptionError(f"precision '{word}' is not a compression edgekit applies", hint, option="precision")


@dataclass
class CompressOptions:
    """What compression to apply to a converted model. Every field set must have an effect on every target
    asked for (``check_compression``), and a pass that changed nothing is an error (``ensures``)."""

    precision: str | None = None  # "int8": weights and activations (calibrated); "int8-dynamic": int8 weights
    calibration: list | None = None  # feed dicts of one sample each (batch 1)
    per_channel: bool = True  # False: per-tensor weight scales
    int8_io: bool = False  # int8 inputs and outputs (full-integer TFLite)
    palettize_bits: int | None = None  # k-means lookup-table weights (Core ML)
    prune_sparsity: float | None = None  # magnitude pruning to this fraction of zeros (Core ML)
    weights_only_bits: int | None = None  # 8 or 4: weight-only linear quantization
    calibrate_method: str | None = None  # static int8 ranges: minmax (the default), entropy, percentile (ONNX)
    activation_type: str | None = None  # static int8 activations: u8 (the default) or s8 (ONNX)
    quant_format: str | None = None  # qdq (the default) or qoperator (ONNX: QLinear* operators)
    keep_float: int | tuple[str, ...] = 0  # layers left in float: the N most sensitive, or these names
    preset: str | None = None  # NNCF preset: performance (the default, symmetric) or mixed (asymmetric activations)
    smooth_quant: bool = False  # NNCF SmoothQuant (model_type TRANSFORMER): migrates activation outliers to weights
    max_accuracy_drop: float | None = None  # budget in top-1 points vs fp32; repaired with keep_float when missed

    def __post_init__(self):
        self.precision = _precision(self.precision)
        _check_knobs(self)
        bits, pal, sparsity = self.weights_only_bits, self.palettize_bits, self.prune_sparsity
        if bits is not None and bits not in WEIGHT_BITS:
            raise OptionError(f"weights_only_bits must be 8 or 4, not {bits}", "use --weights-only-bits 8 or 4",
                              option="weights_only_bits")
        if pal is not None and pal not in PALETTIZE_BITS:
            raise OptionError(f"palettize_bits must be one of {PALETTIZE_BITS}, not {pal}",
                              "4 or 6 bits are the usual choices", option="palettize_bits")
        if sparsity is not None:
            if not 0.0 < float(sparsity) < 1.0:
                raise OptionError(f"prune_sparsity must be between 0 and 1, not {sparsity}", "e.g. 0.5",
                                  option="prune_sparsity")
            self.prune_sparsity = float(sparsity)
        if self.precision == "int8" and bits is not None:
            raise OptionError(f"precision 'int8' (static) and weights_only_bits={bits} conflict",
                              "use precision int8 for weights and activations, or weights_only_bits for weights "
                              "only", option="weights_only_bits")
        if self.precision == "int8-dynamic" and bits not in (None, 8):
            raise OptionError(f"precision int8-dynamic means 8-bit weights; it conflicts with weights_only_bits="
                              f"{bits}", "choose one of them", option="weights_only_bits")

    @property
    def techniques(self) -> tuple[str, ...]:
        """What was asked, in the order it is applied."""
        out = []
        if self.prune_sparsity is not None:
            out.append(PRUNE)
        if self.palettize_bits is not None:
            out.append(PALETTIZE)
        if self.precision == "int8":
            out.append(INT8)
        elif self.precision == "int8-dynamic" or self.weights_only_bits == 8:
            out.append(INT8_WEIGHTS)
        elif self.weights_only_bits == 4:
            out.append(INT4_WEIGHTS)
        return tuple(out)

    @property
    def active(self) -> bool:
        return bool(self.techniques)

    @property
    def modifiers(self) -> tuple[str, ...]:
        """The modifier options set away from their defaults."""
        return tuple(k for k, default in MODIFIERS.items() if getattr(self, k) != default)

    def field_of(self, technique: str) -> str:
        """The option that asked for ``technique``."""
        if technique == INT8_WEIGHTS:
            return "precision" if self.precision == "int8-dynamic" else "weights_only_bits"
        return {PRUNE: "prune_sparsity", PALETTIZE: "palettize_bits", INT8: "precision",
                INT4_WEIGHTS: "weights_only_bits"}[technique]

    def label(self, name: str) -> str:
        """An option as the CLI flag and the Python field, e.g. ``--palettize 4 (palettize_bits=4)``."""
        value = getattr(self, name)
        shown = ",".join(value) if isinstance(value, tuple) else value
        flag = {"precision": f"--precision {value}", "per_channel": "--per-tensor", "int8_io": "--int8-io",
                "palettize_bits": f"--palettize {value}", "prune_sparsity": f"--prune {value}",
                "weights_only_bits": f"--weights-only-bits {value}", "smooth_quant": "--smooth-quant",
                "max_accuracy_drop": f"--max-accuracy-drop {value}"}.get(name)
        flag = flag or f"--{name.replace('_', '-')} {shown}"
        return f"{flag} ({name}={value!r})"


def _check_knobs(c: CompressOptions) -> None:
    """The static-int8 knobs: known words (lower case), keep_float a count >= 0 or a tuple of layer names."""
    for name, allowed in CHOICES.items():
        v = getattr(c, name)
        if v is not None:
            w = str(v).strip().lower()
            if w not in allowed:
                raise OptionError(f"{name} must be one of {', '.join(allowed)}, not {v!r}",
                                  f"e.g. --{name.replace('_', '-')} {allowed[0]}", option=name)
            setattr(c, name, w)
    k = c.keep_float
    if isinstance(k, str):
        k = tuple(x.strip() for x in k.split(",") if x.strip())
        k = int(k[0]) if len(k) == 1 and k[0].isdigit() else k
    if isinstance(k, (list, tuple)):
        k = tuple(str(x) for x in k) or 0
    if isinstance(k, bool) or not isinstance(k, (int, tuple)) or isinstance(k, int) and k < 0:
        raise OptionError(f"keep_float must be a count >= 0 or layer names, not {c.keep_float!r}",
                          "e.g. --keep-float 2 (the 2 most sensitive layers) or --keep-float name1,name2",
                          option="keep_float")
    c.keep_float = k
    c.smooth_quant = bool(c.smooth_quant)
    if c.max_accuracy_drop is not None:
        try:
            c.max_accuracy_drop = float(c.max_accuracy_drop)
        except (TypeError, ValueError):
            raise OptionError(f"max_accuracy_drop must be a number of points, not {c.max_accuracy_drop!r}",
                              "e.g. --max-accuracy-drop 1.0 (one point of top-1 agreement)",
                              option="max_accuracy_drop") from None


def compress_options(options) -> CompressOptions | None:
    """The CompressOptions in ``options``: itself, a ConvertOptions' ``compress``, or built from an object with
    the old field names (precision, calibration, per_channel, ...). None when no compression is asked."""
    if options is None or isinstance(options, CompressOptions):
        return options
    if hasattr(options, "compress") and hasattr(options, "float_precision"):
        return options.compress
    prec = getattr(options, "precision", None)
    kw = {f.name: getattr(options, f.name) for f in fields(CompressOptions) if hasattr(options, f.name)}
    kw["precision"] = None if prec in (None, "fp32", "fp16") else prec
    return CompressOptions(**kw)


def float_precision(options) -> str:
    """The conversion's precision (fp32 or fp16) the compression starts from."""
    fp = getattr(options, "float_precision", None)
    if fp is None:
        fp = getattr(options, "precision", None)
    return "fp16" if fp == "fp16" else "fp32"


class CompressionPass:
    """One technique on one target. Subclasses set the class attributes and implement ``run``, ``inspect``
    and ``ensures`` (``in_converter`` passes are applied by the converter edge instead of ``run``)."""

    target: ClassVar[Format]
    technique: ClassVar[str]
    summary: ClassVar[str] = ""  # one line for the capability table
    honours: ClassVar[frozenset[str]] = frozenset()  # modifiers it applies: "per_channel", "int8_io"
    float_precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16")  # conversion precisions it starts from
    needs: ClassVar[tuple[tuple[str, str], ...]] = ()  # (import name, distribution)
    extra: ClassVar[str] = ""
    needs_calibration: ClassVar[bool] = False
    runs_model: ClassVar[bool] = False  # runs the model to calibrate (so needs a runtime for the target here)
    platforms: ClassVar[tuple[str, ...]] = ()  # sys.platform values it runs on; () means any
    platform_why: ClassVar[str] = ""
    platform_hint: ClassVar[str] = ""
    in_converter: ClassVar[bool] = False  # applied inside the conversion (TFLite), not on the converted file

    @property
    def name(self) -> str:
        return f"{target_name(self.target)}:{self.technique}"

    def refuse(self, options: CompressOptions, option: str, why: str, hint: str = "") -> OptionError:
        t = target_name(self.target)
        return OptionError(f"{t} cannot honour {options.label(option)}: {why}",
                           hint or f"drop {options.label(option).split(' (')[0]} for target '{t}'",
                           target=t, option=option)

    def requires(self, options: CompressOptions) -> None:
        """Refuse, before any conversion starts, what this pass cannot honour here. Subclasses extend it."""
        if self.platforms and sys.platform not in self.platforms:
            raise self.refuse(options, options.field_of(self.technique), self.platform_why, self.platform_hint)
        missing = [(mod, dist) for mod, dist in self.needs if not _installed(mod)]
        if missing:
            raise MissingDependencyError(missing[0][1], self.extra, f"apply {self.technique} compression to "
                                                                    f"{target_name(self.target)}")

    def requires_model(self, before: dict, options: CompressOptions) -> None:
        """Refuse a converted model this pass cannot work on (``before`` is ``inspect`` of it)."""

    def run(self, src: Path, options: CompressOptions, out: Path) -> tuple[Path, list[str]]:
        """Write the compressed model under ``out`` (a fresh folder, also the current directory's parent)."""
        raise NotImplementedError

    @staticmethod
    def inspect(path: Path) -> dict:
        """What ``ensures`` compares: op counts, weight dtypes, sizes."""
        raise NotImplementedError

    def ensures(self, before: dict | None, after: dict, options: CompressOptions) -> None:
        """Raise a ConversionError if the pass had no effect (``before`` is None for in-converter passes)."""
        raise NotImplementedError

    def report(self, before: dict, after: dict) -> list[str]:
        """Notes on the whole compression, from the last pass (sizes, a raised minimum OS)."""
        return []

    def layers(self, src: Path, options: CompressOptions, scratch: Path) -> list[str]:
        """The layers ``keep_float`` can name in the model at ``src`` (passes that honour it), in graph order;
        ``scratch`` is a folder for temporary files."""
        raise NotImplementedError


PASSES: dict[tuple[Format, str], CompressionPass] = {}
REFUSALS: dict[tuple[Format, str], tuple[str, str]] = {}  # (target, option) -> (why, hint)


def register(cls: type[CompressionPass]) -> type[CompressionPass]:
    """Class decorator: add a pass to the registry; a second pass for the same (target, technique) is an error."""
    key = (cls.target, cls.technique)
    if key in PASSES:
        raise ValueError(f"compression pass '{target_name(cls.target)}:{cls.technique}' is already registered")
    PASSES[key] = cls()
    return cls


def refusal(target: Format, option: str, why: str, hint: str = "") -> None:
    """Declare why ``target`` cannot honour ``option`` (shown when it is asked)."""
    if (target, option) in REFUSALS:
        raise ValueError(f"a refusal of '{option}' for '{target_name(target)}' is already declared")
    REFUSALS[(target, option)] = (why, hint)


def load_passes() -> dict[tuple[Format, str], CompressionPass]:
    """Import every compression module (cheap: the tools are imported inside each pass's run)."""
    for name in MODULES:
        importlib.import_module(f"edgekit.converters.{name}")
    return PASSES


def target_name(target: Format) -> str:
    from .planner import TARGETS

    return next((k for k, v in TARGETS.items() if v is target), target.value)


def _target(target) -> Format:
    from .planner import TARGETS

    if isinstance(target, Format):
        return target
    if str(target) in TARGETS:
        return TARGETS[str(target)]
    return Format(target)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _refused(target: Format, copts: CompressOptions, option: str, fallback: str) -> OptionError:
    t = target_name(target)
    why, hint = REFUSALS.get((target, option), (fallback, ""))
    flag = copts.label(option).split(" (")[0]
    if not hint:
        others = sorted({target_name(f) for (f, tech), p in PASSES.items() if f is not target and
                         (option in p.honours or copts.field_of(tech) == option and tech in copts.techniques)})
        hint = f"drop {flag} for target '{t}'" + (f", or use it for {', '.join(others)}" if others else "")
    return OptionError(f"{t} cannot honour {copts.label(option)}: {why}", hint, target=t, option=option)


def select(target, options, *, source: Format | None = None) -> list[CompressionPass]:
    """The passes that apply ``options`` to ``target``, in order, after each one's ``requires``. Raises an
    OptionError naming the target and the option for anything the target cannot honour."""
    target = _target(target)
    copts = compress_options(options)
    if copts is None:
        return []
    load_passes()
    if not copts.active:
        if copts.max_accuracy_drop is not None:
            raise OptionError(f"{copts.label('max_accuracy_drop')} is a budget for a compression, and none was "
                              "asked for", "add --precision int8, or drop the option", option="max_accuracy_drop")
        if copts.modifiers:
            name = copts.modifiers[0]
            raise OptionError(f"{copts.label(name)} changes a quantization, and none was asked for",
                              "add --precision int8 or int8-dynamic, or drop the option", option=name)
        return []
    passes = []
    for tech in copts.techniques:
        p = PASSES.get((target, tech))
        if p is None:
            raise _refused(target, copts, copts.field_of(tech), f"edgekit has no {tech} compression for it")
        passes.append(p)
    for name in copts.modifiers:
        if not any(name in p.honours for p in passes):
            raise _refused(target, copts, name, f"none of {', '.join(p.name for p in passes)} uses it")
    fp = float_precision(options)
    for p in passes:
        if fp not in p.float_precisions:
            raise p.refuse(copts, copts.field_of(p.technique), f"it starts from an fp32 model, not {fp}",
                           "convert in fp32 (drop --precision fp16) to compress")
        if p.in_converter and source is target:
            raise p.refuse(copts, copts.field_of(p.technique),
                           f"the source is already {target_name(target)}: it is quantized by its converter only",
                           "compress from the source the model was converted from")
        p.requires(copts)
    return passes


def check_compression(targets, options, *, source: Format | None = None) -> dict[Format, list[str]]:
    """Check, before any conversion starts, that every target can honour every compression option. Returns the
    plan (target -> pass names, in order); raises an OptionError (an InputError) naming the first target and
    option that cannot be honoured, or a MissingDependencyError naming the extra a pass needs."""
    load_passes()
    for x in targets:
        t = _target(x)
        if float_precision(options) == "fp16" and (t, "fp16") in REFUSALS:
            why, hint = REFUSALS[(t, "fp16")]
            raise OptionError(f"{target_name(t)} cannot honour --precision fp16: {why}", hint, target=target_name(t),
                              option="precision")
    return {(t := _target(x)): [p.name for p in select(t, options, source=source)] for x in targets}


def capability_table() -> list[dict]:
    """The registered passes and the declared refusals, one row each (for docs and the report)."""
    load_passes()
    rows = [{"target": target_name(p.target), "technique": p.technique, "summary": p.summary,
             "honours": sorted(p.honours), "calibration": p.needs_calibration, "runs_model": p.runs_model,
             "platforms": list(p.platforms) or ["any"], "float": list(p.float_precisions),
             "extra": p.extra, "in_converter": p.in_converter} for p in PASSES.values()]
    rows += [{"target": target_name(t), "refuses": opt, "why": why} for (t, opt), (why, _) in REFUSALS.items()]
    return rows

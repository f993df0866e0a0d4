"""What the NCNN edges share: running pnnx (TorchScript or ONNX -> .ncnn.param + .ncnn.bin) and naming its I/O.

pnnx ships as a native program inside the ``pnnx`` wheel; edgekit runs it in a child process with every file it
writes placed explicitly (only the .ncnn pair lands in the output folder). ``fp16=0`` for an fp32 target: pnnx
writes fp16 weights by default (DESIGN.md field notes). pnnx names the I/O in0, in1, ... / out0, out1, ...;
``name_io`` renames the inputs to the source's names, appends one ``Noop`` per output (the source's output name,
in the source's order: NCNN lists outputs in the order blobs are produced) and writes each input's and output's
shape without its batch into the Input / Noop layer (w/h/d/c; 0 for a dim of any size; NCNN reads neither), so the
runner can describe the model and give outputs the source's rank (an NCNN Mat drops dims of size 1).
NCNN runs one sample per call: the batch is exported as 1.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from edgekit.errors import ConversionError, InputError

from .base import ConvertOptions

def input_shapes(names: list[str], shapes: list[list], options: ConvertOptions) -> list[list[int]]:
    """The shapes pnnx traces with: the sample's (or --input-shape's) dims, batch 1. A fixed batch other than 1
    is refused (NCNN has no batch dimension)."""
    out = []
    for name, shape in zip(names, shapes):
        given = options.input_shapes.get(name) or ()
        sample = (options.sample or {}).get(name)
        dims = []
        for j, d in enumerate(shape):
            if j < len(given) and given[j] is not None and int(given[j]) > 0:
                d = int(given[j])
            elif not isinstance(d, int) or d <= 0:
                d = int(sample.shape[j]) if sample is not None and j < sample.ndim else (1 if j == 0 else 16)
            dims.append(int(d))
        if not dims:
            raise InputError(f"input '{name}' is a scalar; NCNN takes tensors with a batch dim",
                             "give the model a batched input")
        if isinstance(shape[0], int) and shape[0] > 1:
            raise InputError(f"input '{name}' has a fixed batch of {shape[0]}; NCNN runs one sample per call",
                             "export the source with batch 1 or a dynamic batch")
        dims[0] = 1
        if len(dims) > 5:
            raise InputError(f"input '{name}' has {len(dims)} dims; NCNN takes at most 4 besides the batch")
        out.append(dims)
    return out


def _shape_arg(shapes: list[list[int]], dtypes: list[str]) -> str:
    code = {"float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32", "float64": "f64"}
    return ",".join(f"[{','.join(map(str, s))}]{code.get(t, 'f32')}" for s, t in zip(shapes, dtypes))


def run_pnnx(model: Path, shapes: list[list[int]], dtypes: list[str], fp16: bool, out: Path, stem: str,
             scratch: Path) -> tuple[Path, Path]:
    """Run pnnx on ``model`` (.pt TorchScript or .onnx); return the (.ncnn.param, .ncnn.bin) written in ``out``."""
    import pnnx

    out.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    model, out, scratch = Path(model).resolve(), out.resolve(), scratch.resolve()
    param, weights = out / f"{stem}.ncnn.param", out / f"{stem}.ncnn.bin"
    args = [pnnx.EXEC_PATH, str(model), f"inputshape={_shape_arg(shapes, dtypes)}", f"fp16={int(fp16)}",
            f"ncnnparam={param}", f"ncnnbin={weights}", f"ncnnpy={scratch / (stem + '_ncnn.py')}",
            f"pnnxparam={scratch / (stem + '.pnnx.param')}", f"pnnxbin={scratch / (stem + '.pnnx.bin')}",
            f"pnnxpy={scratch / (stem + '_pnnx.py')}", f"pnnxonnx={scratch / (stem + '.pnnx.onnx')}", "device=cpu"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, cwd=scratch, timeout=1800)
    except subprocess.TimeoutExpired as e:
        raise ConversionError("pnnx did not finish in 30 minutes") from e
    log = (done.stdout + done.stderr).strip().splitlines()
    (scratch / f"{stem}.pnnx.log").write_text("\n".join(log))
    if done.returncode != 0 or not param.is_file() or not weights.is_file():
        unsupported = [ln for ln in log if "not supported" in ln.lower() or "unsupported" in ln.lower()]
        why = (unsupported or log or ["no output"])[-1][:300]
        e = ConversionError(f"pnnx failed (exit {done.returncode}): {why}",
                            "NCNN may lack an operator of this model; the pnnx log is in the work folder")
        e.op = why if unsupported else None
        raise e
    return param, weights


def _blob_name(name: str) -> bool:
    return 0 < len(name) < 256 and not any(c.isspace() for c in name)


def _shape_params(shape: list) -> dict[str, str]:
    """An NCNN shape (w/h/d/c params) of ``shape`` without its batch; 0 for a dim of any size."""
    dims = [d if isinstance(d, int) and d > 0 else 0 for d in shape[1:]]
    if not dims or len(dims) > 4:
        return {}
    keys = {1: ("0",), 2: ("1", "0"), 3: ("2", "1", "0"), 4: ("2", "11", "1", "0")}[len(dims)]
    return {k: str(v) for k, v in sorted(zip(keys, dims), key=lambda kv: int(kv[0]))}


def name_io(param: Path, in_names: list[str], out_names: list[str], shapes: list[list[int | None]],
            notes: list[str], out_shapes: list[list[int | None]] | None = None) -> None:
    """Rename pnnx's in0.../out0... to the source's names (see the module docstring), in place."""
    from edgekit.formats.ncnn_param import NcnnLayer, read_param

    p = read_param(param)
    blobs = {t for la in p.layers for t in la.tops}

    def rename(old: str, new: str) -> None:
        for la in p.layers:
            la.bottoms = [new if b == old else b for b in la.bottoms]
            la.tops = [new if t == old else t for t in la.tops]
        blobs.discard(old)
        blobs.add(new)

    wanted = set(in_names) | set(out_names)
    for b in sorted(blobs & wanted):  # pnnx's own blob names that a source name would shadow
        rename(b, f"{b}.pnnx")
    inputs = p.inputs
    if len(inputs) != len(in_names):
        raise ConversionError(f"pnnx wrote {len(inputs)} inputs where the source has {len(in_names)}",
                              "an input the model does not use is dropped by pnnx; remove it from the source")
    for la, name, shape in zip(inputs, in_names, shapes):
        if _blob_name(name):
            rename(la.tops[0], name)
        else:
            notes.append(f"input '{name}' is named {la.tops[0]} in the NCNN model (a blob name has no spaces)")
        la.params = _shape_params(shape)
    outs = p.outputs
    if len(outs) != len(out_names):
        raise ConversionError(f"pnnx wrote {len(outs)} outputs where the source has {len(out_names)}",
                              "check the source's outputs (a constant or duplicated output is folded away)")
    order = sorted(outs, key=lambda b: int(b.split(".")[0][3:]) if b.split(".")[0][3:].isdigit() else 1 << 30)
    for i, (blob, name) in enumerate(zip(order, out_names)):
        top = name if _blob_name(name) else f"output_{i}"
        shape = (out_shapes or [])[i] if i < len(out_shapes or []) else None
        # the source's output shape rides on the Noop (NCNN ignores a Noop's params), as an Input's does
        p.layers.append(NcnnLayer("Noop", f"edgekit_output_{i}", [blob], [top],
                                  _shape_params(shape) if shape else {}))
    param.write_text(p.text())

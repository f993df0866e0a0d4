"""ONNX -> TensorFlow SavedModel with onnx2tf: the first hop of ONNX -> TFLite and ONNX -> Core ML.

onnx2tf transposes to NHWC by default; every input is listed in ``keep_shape_absolutely_input_names`` so the
converted model takes the same NCHW arrays as the ONNX model (no silent layout change). onnx2tf cannot keep most
dynamic dims (a transformer's sequence length fails inside its tf.transpose layers, a JAX-like graph's converts to
wrong numbers): the ONNX pass rewrite.onnx_pin_dims pins every dynamic dim but the
batch to the check sample's size (or ``--input-shape``'s) first, so the batch stays dynamic (the TFLite signature
resizes); only when onnx2tf fails with a dynamic batch is the batch pinned to 1 as well. What was pinned is in the
Artifact's ``pinned`` and a note.
onnx2tf pins old versions of everything it touches, so it is installed with --no-deps (see the Makefile).
When every input is a fixed-batch 3-channel NHWC image, onnx2tf downloads 20 MS-COCO images from GitHub for its
own checks; edgekit hands it the conversion sample instead, so the edge works offline.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from edgekit.formats import Format

from edgekit.errors import ConversionError

from .base import Artifact, ConvertOptions, Edge, fail, register

INSTALL = ("pip install tf-keras onnx_graphsurgeon sng4onnx sne4onnx psutil onnxsim && "
           "pip install --no-deps onnx2tf==1.29.24")


@register
class OnnxToSavedModel(Edge):
    name = "onnx_to_savedmodel"
    source = (Format.ONNX,)
    target = Format.SAVEDMODEL
    requires = (("onnx2tf", "onnx2tf"), ("tensorflow", "tensorflow"), ("onnx_graphsurgeon", "onnx_graphsurgeon"),
                ("tf_keras", "tf-keras"))
    extra = "tensorflow"
    install_hint = INSTALL
    tools = ("onnx2tf", "tensorflow")
    priority = 1

    def run(self, src: Artifact, options: ConvertOptions, out: Path) -> Artifact:
        from edgekit.runtimes.onnxruntime import check_onnx_file

        info = check_onnx_file(src.path)
        custom = [op for op in info.op_histogram if "::" in op and not op.startswith(("ai.onnx", "com.microsoft"))]
        if custom:
            raise fail("onnx2tf cannot convert operators outside the ONNX standard",
                       ValueError(", ".join(custom)), custom[0])
        names = [v.name for v in info.inputs]
        dest = out / f"{src.path.stem}_savedmodel"
        first, batch = _pin_attempts(src.path, options)
        try:
            art = self._convert(src, options, out, dest, names, info, first)
        except ConversionError:
            if not batch:
                raise
            shutil.rmtree(dest, ignore_errors=True)  # onnx2tf failed with a dynamic batch: pin it to 1 as well
            return self._convert(src, options, out, dest, names, info, _merged(first, batch))
        if batch:
            art.notes.append(f"batch (dim 0 of {', '.join(batch)}) kept dynamic")
        return art

    def _convert(self, src: Artifact, options: ConvertOptions, out: Path, dest: Path, names, info, pins) -> Artifact:
        from .rewrite.onnx import rewrite_onnx

        try:
            rw = rewrite_onnx(src.path, out / f"{src.path.stem}_pinned", pins=pins,
                              why="onnx2tf cannot keep them dynamic", layout=True)
        except ValueError as e:  # a size that contradicts the graph
            raise fail("cannot pin the dynamic dims", e) from e
        # onnx2tf rewrites its input file in place (onnxsim, shape overwrites): give it a private copy so the
        # user's model is never modified
        work = out / f"{src.path.stem}_onnx2tf_input"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy2(rw.path, work / src.path.name)
        if rw.path == src.path:
            for _tensor, loc in info.external_data:
                (work / loc).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src.path.parent / loc, work / loc)
        else:
            data = rw.path.with_name(rw.path.name + ".data")  # a rewritten model over 2 GB
            if data.is_file():
                shutil.copy2(data, work / f"{src.path.name}.data")
            shutil.rmtree(rw.path.parent, ignore_errors=True)
        kwargs = dict(input_onnx_file_path=str(work / src.path.name), output_folder_path=str(dest), non_verbose=True,
                      keep_shape_absolutely_input_names=names, copy_onnx_input_output_names_to_tflite=True)
        notes = list(rw.notes)
        old_path = os.environ.get("PATH", "")
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + old_path  # onnx2tf runs `onnxsim`
        try:
            import onnx2tf

            with _own_image_data(options):
                onnx2tf.convert(**kwargs)
        except BaseException as e:  # onnx2tf calls sys.exit(1) on some failures
            if isinstance(e, KeyboardInterrupt):
                raise
            op = _failing_op(e)
            left = _still_dynamic(info, rw.pinned)  # named by axis: the exporter's symbols are internal
            hint = (f" (dynamic input {left[0]}: fix it with --input-shape)" if left and op is None else "")
            raise fail("onnx2tf failed" + hint, _without_symbols(e), op) from e
        finally:
            os.environ["PATH"] = old_path
        shutil.rmtree(work, ignore_errors=True)
        if not (dest / "saved_model.pb").is_file():
            raise fail("onnx2tf wrote no SavedModel", RuntimeError(f"nothing in {dest}"))
        return Artifact(dest, Format.SAVEDMODEL, "fp32", notes=notes, pinned=rw.pinned)


def _pin_attempts(path: Path, options: ConvertOptions) -> tuple[dict, dict]:
    """(every dynamic dim but the batch (dim 0), the batch at 1): the first is tried alone, then both. A size
    comes from ``--input-shape`` where given (None there keeps the dim dynamic), else from the check sample."""
    from .rewrite.onnx import dynamic_axes

    asked = options.input_shapes or {}
    first: dict[str, dict[int, int]] = {}
    batch: dict[str, dict[int, int]] = {}
    for name, axes in dynamic_axes(path).items():
        for axis in axes:
            shape = asked.get(name)
            if shape is not None and axis < len(shape):
                if shape[axis] is not None:
                    first.setdefault(name, {})[axis] = int(shape[axis])
            elif axis == 0:
                batch.setdefault(name, {})[0] = 1
            else:
                first.setdefault(name, {})[axis] = (options.pin_dims or {}).get(name, {}).get(axis, 1)
    return first, batch


def _merged(a: dict, b: dict) -> dict:
    out = {k: dict(v) for k, v in a.items()}
    for k, v in b.items():
        out.setdefault(k, {}).update(v)
    return out


def _without_symbols(err: BaseException) -> BaseException:
    """The tool's error with exporters' dim symbols (unk__214) shown as '?': they mean nothing to the user."""
    import re

    from edgekit.errors import first_line

    text = first_line(err, 400)
    clean = re.sub(r"\bunk__\d+\b", "?", text)
    return err if clean == text else RuntimeError(clean)


def _still_dynamic(info, pinned: dict[str, dict[int, int]]) -> list[str]:
    """'NAME dim K' for each input dim that is still dynamic after the pins."""
    return [f"{v.name} dim {i}" for v in info.inputs if v.shape
            for i, d in enumerate(v.shape) if not isinstance(d, int) and i not in pinned.get(v.name, {})]


@contextlib.contextmanager
def _own_image_data(options: ConvertOptions):
    """While onnx2tf runs, its ``download_test_image_data()`` (20 NHWC RGB images in [0, 1], fetched from GitHub
    or Wasabi) returns edgekit's data: the conversion sample when it is a batch of 3-channel NHWC images,
    otherwise fixed generated images of the shape onnx2tf's own file has. onnx2tf resizes them to the input."""
    import numpy as np

    images = [np.asarray(v, dtype=np.float32) for v in (options.sample or {}).values()
              if np.ndim(v) == 4 and np.shape(v)[-1] == 3 and np.shape(v)[0] > 0]
    if images:
        x = images[0]
        data = np.concatenate([x] * -(-20 // len(x)))[:20]  # onnx2tf slices up to the model's batch (<= 20)
    else:
        data = np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
    modules = [sys.modules.get(m) for m in ("onnx2tf.onnx2tf", "onnx2tf.utils.common_functions")]
    patched = [(m, m.download_test_image_data) for m in modules if hasattr(m, "download_test_image_data")]
    for m, _ in patched:
        m.download_test_image_data = lambda: data.copy()
    try:
        yield
    finally:
        for m, fn in patched:
            m.download_test_image_data = fn


def _failing_op(err: BaseException) -> str | None:
    import re

    s = str(err)
    m = re.search(r"onnx2tf\.ops\.(\w+)", s) or re.search(r"node[_ ]name:?\s*['\"]?([\w/.:-]+)", s) \
        or re.search(r"\((node_[\w/.-]+)\)", s)
    return m.group(1) if m else None

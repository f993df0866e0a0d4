"""ONNX -> TensorFlow SavedModel with onnx2tf: the first hop of ONNX -> TFLite and ONNX -> Core ML.

onnx2tf transposes to NHWC by default; every input is listed in ``keep_shape_absolutely_input_names`` so the
converted model takes the same NCHW arrays as the ONNX model (no silent layout change). A graph whose dynamic
dims onnx2tf cannot handle (e.g. a transformer's sequence length) converts once ``--input-shape`` fixes them.
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
        # onnx2tf rewrites its input file in place (onnxsim, shape overwrites): give it a private copy so the
        # user's model is never modified
        work = out / f"{src.path.stem}_onnx2tf_input"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src.path, work / src.path.name)
        for _tensor, loc in info.external_data:
            (work / loc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src.path.parent / loc, work / loc)
        kwargs = dict(input_onnx_file_path=str(work / src.path.name), output_folder_path=str(dest), non_verbose=True,
                      keep_shape_absolutely_input_names=names, copy_onnx_input_output_names_to_tflite=True)
        notes = []
        if options.input_shapes:
            kwargs["overwrite_input_shape"] = [f"{n}:{','.join(str(d) for d in s)}"
                                               for n, s in options.input_shapes.items() if n in names]
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
            dims = [v for v in info.inputs if v.shape and any(not isinstance(d, int) for d in v.shape)]
            hint = (f" (dynamic input {dims[0].name} {list(dims[0].shape)}: fix it with --input-shape)"
                    if dims and not options.input_shapes and op is None else "")
            raise fail("onnx2tf failed" + hint, e, op) from e
        finally:
            os.environ["PATH"] = old_path
        shutil.rmtree(work, ignore_errors=True)
        if not (dest / "saved_model.pb").is_file():
            raise fail("onnx2tf wrote no SavedModel", RuntimeError(f"nothing in {dest}"))
        return Artifact(dest, Format.SAVEDMODEL, "fp32", notes=notes)


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

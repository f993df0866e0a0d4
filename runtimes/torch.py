"""Reference backend for PyTorch source models: ExportedProgram `.pt2`, TorchScript `.pt`, pickled modules.

All three can run code while loading (unpickling, TorchScript code), so they load only with ``trust_code=True``.
"""

from __future__ import annotations

import pickle

import numpy as np

from edgekit.errors import BackendError, ModelFileError, first_line
from edgekit.formats import Format
from edgekit.runtimes.base import Runner
from edgekit.types import TensorSpec




def _flatten(y) -> list:
    if isinstance(y, dict):
        return [v for k in y for v in _flatten(y[k])]
    if isinstance(y, (list, tuple)):
        return [v for item in y for v in _flatten(item)]
    return [y]


def load_torch(path, fmt: Format):
    """The one PyTorch loader, shared by this runner and the converter edges: (module in eval mode, the
    ExportedProgram for a .pt2 else None). The caller has required trust (edgekit.trust.require_trust): every
    format here runs code when loaded. Failures are ModelFileError with the cause and a fix."""
    import torch

    try:
        if fmt is Format.TORCH_EXPORT:
            ep = torch.export.load(str(path))
            return ep.module(), ep
        if fmt is Format.TORCHSCRIPT:
            return torch.jit.load(str(path), map_location="cpu").eval(), None
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except ImportError as e:  # the pickle names a class whose module is not importable here
        raise ModelFileError(
            f"{path.name} needs the Python module '{getattr(e, 'name', None) or e}' to unpickle, and it is not "
            "importable here",
            "make the module that defines the model importable, or save it with torch.export.save (.pt2) "
            "which needs no model code",
        ) from e
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, AttributeError, TypeError,
            pickle.UnpicklingError) as e:
        raise ModelFileError(f"PyTorch could not load {path.name}: {first_line(e)}") from e
    if not isinstance(obj, torch.nn.Module):
        raise ModelFileError(
            f"{path.name} holds {type(obj).__name__} (weights only), not a model",
            "save the model with torch.export.save(torch.export.export(model, args), 'model.pt2')",
        )
    return obj.eval(), None


class TorchRunner(Runner):
    name = "torch"
    formats = (Format.TORCH_EXPORT, Format.TORCHSCRIPT, Format.TORCH_PICKLE)
    requires = (("torch", "torch", "torch"),)

    def _load(self) -> None:
        path, fmt = self.source.path, self.source.format  # trust was required by Runner.load (edgekit.trust)
        import torch

        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.module, ep = load_torch(path, fmt)
        if ep is not None:
            self._from_exported(ep)
        elif fmt is Format.TORCHSCRIPT:
            self._from_signature(self.module.forward.schema.arguments[1:])
        else:
            import inspect

            self._from_names(list(inspect.signature(self.module.forward).parameters))

    def _from_exported(self, ep) -> None:
        user = list(ep.graph_signature.user_inputs)
        nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        specs = []
        for name in user:
            val = nodes[name].meta.get("val")
            shape = tuple(int(d) if isinstance(d, int) else None for d in val.shape) if val is not None else None
            dtype = str(val.dtype).replace("torch.", "") if val is not None else None
            specs.append(TensorSpec(name, shape, dtype or ""))
        self.inputs = specs
        out_nodes = [n for n in ep.graph.nodes if n.op == "output"][0].args[0]
        outs = []
        for i, node in enumerate(out_nodes[: len(ep.graph_signature.user_outputs)]):
            val = getattr(node, "meta", {}).get("val")
            shape = tuple(int(d) if isinstance(d, int) else None for d in val.shape) if val is not None else None
            dtype = str(val.dtype).replace("torch.", "") if val is not None else ""
            outs.append(TensorSpec(f"output_{i}", shape, dtype))
        self.outputs = outs

    def _from_signature(self, args) -> None:
        self._from_names([a.name for a in args])

    def _from_names(self, names) -> None:
        # TorchScript and pickled modules do not record shapes or dtypes: any array is accepted
        self.inputs = [TensorSpec(n, None, "") for n in names if n not in ("self", "args", "kwargs")]
        self.outputs = []

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        try:
            with torch.inference_mode():
                y = self.module(*[torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs])
        except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as e:
            known = all(s.shape is not None for s in self.inputs)
            raise BackendError(f"PyTorch inference failed: {first_line(e)}",
                               "check the inputs' shapes and dtypes" + ("" if known else
                               "; this format records none, so edgekit cannot check them before the call")) from e
        ys = [t.detach().cpu().numpy() for t in _flatten(y)]
        if len(self.outputs) != len(ys):
            self.outputs = [TensorSpec(f"output_{i}", None, str(v.dtype)) for i, v in enumerate(ys)]
        return {s.name: v for s, v in zip(self.outputs, ys)}

    def _close(self) -> None:
        self.module = None

    def describe(self) -> dict:
        params = sum(int(p.numel()) for p in self.module.parameters()) if hasattr(self.module, "parameters") else None
        return {"parameters": params}

"""The NCNN .param text (magic 7767517): layers, blobs, inputs and outputs, read and written without ncnn.

Line 1 is the magic, line 2 ``layer_count blob_count``, then one layer a line:
``type name bottom_count top_count bottoms... tops... key=value...`` (a negative key -23300-k holds an array
``k=n,v1,...,vn``). An ``Input`` layer's params 0/1/2 (11: depth) are w/h/c when written; NCNN itself ignores
them. The inputs are the Input layers' tops in file order, the outputs the blobs no layer consumes, in the order
they are produced. An NCNN tensor has no batch dimension: edgekit's convention (pnnx's) is a leading batch of 1.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

MAGIC = "7767517"
_MAX_BYTES = 64 << 20
# layer type prefix -> (weight_data_size key, bias_term key); num_output is key 0 in each
_WEIGHT_KEYS = {"Convolution": ("6", "5"), "Deconvolution": ("6", "5"), "InnerProduct": ("2", "1"),
                "Embed": ("3", "2")}


class ParamError(ValueError):
    pass


@dataclass
class NcnnLayer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[str, str] = field(default_factory=dict)  # key -> raw value text, in file order

    def line(self) -> str:
        parts = [f"{self.type:<24} {self.name:<24} {len(self.bottoms)} {len(self.tops)}", *self.bottoms, *self.tops]
        parts += [f"{k}={v}" for k, v in self.params.items()]
        return " ".join(parts)


@dataclass
class NcnnParam:
    layers: list[NcnnLayer]

    @property
    def inputs(self) -> list[NcnnLayer]:
        return [la for la in self.layers if la.type == "Input"]

    @property
    def outputs(self) -> list[str]:
        used = {b for la in self.layers for b in la.bottoms}
        return [t for la in self.layers for t in la.tops if t not in used]

    @property
    def op_histogram(self) -> dict[str, int]:
        return dict(Counter(la.type for la in self.layers
                            if la.type != "Input" and not la.name.startswith("edgekit_output_")))

    def parameter_count(self) -> int:
        """Weights of the layers that declare their size (convolutions, inner products, embeddings), with their
        biases: what the .bin holds for them, whatever its storage type."""
        n = 0
        for la in self.layers:
            kind = next((k for k in _WEIGHT_KEYS if la.type.startswith(k)), None)
            if kind is None:
                continue
            size, bias = _WEIGHT_KEYS[kind]
            n += _int(la.params.get(size, "0")) + (_int(la.params.get("0", "0")) if la.params.get(bias) == "1" else 0)
        return n

    def output_layer(self, blob: str) -> NcnnLayer | None:
        """The layer producing output ``blob`` (edgekit's Noop carries the output's shape)."""
        return next((la for la in self.layers if blob in la.tops), None)

    def input_shape(self, layer: NcnnLayer | None) -> list[int | None] | None:
        """The shape an Input (or edgekit's output Noop) declares, with edgekit's leading batch of 1, from its
        w/h/(d)/c params (0 marks a dim of any size); None when the layer declares none."""
        if layer is None:
            return None
        keys = [k for k in ("2", "11", "1", "0") if k in layer.params]  # c, d, h, w: outermost first
        if not keys:
            return None
        return [1] + [(_int(layer.params[k]) or None) for k in keys]

    def text(self) -> str:
        blobs = len({b for la in self.layers for b in la.tops})
        return "\n".join([MAGIC, f"{len(self.layers)} {blobs}", *(la.line() for la in self.layers)]) + "\n"


def _int(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        return 0


def parse_param(text: str) -> NcnnParam:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != MAGIC:
        raise ParamError(f"not an NCNN .param file (the first line is not the magic {MAGIC})")
    try:
        n_layers, _n_blobs = (int(x) for x in lines[1].split())
    except (IndexError, ValueError):
        raise ParamError("line 2 must hold the layer and blob counts") from None
    if n_layers != len(lines) - 2:
        raise ParamError(f"line 2 announces {n_layers} layers, the file has {len(lines) - 2}")
    layers = []
    for i, ln in enumerate(lines[2:], 3):
        f = ln.split()
        try:
            nb, nt = int(f[2]), int(f[3])
        except (IndexError, ValueError):
            raise ParamError(f"line {i}: expected 'type name bottom_count top_count ...'") from None
        if nb < 0 or nt < 0 or len(f) < 4 + nb + nt:
            raise ParamError(f"line {i}: layer {f[1]} lists fewer blobs than its counts")
        params = {}
        for kv in f[4 + nb + nt:]:
            k, sep, v = kv.partition("=")
            if not sep:
                raise ParamError(f"line {i}: parameter '{kv}' is not key=value")
            params[k] = v
        layers.append(NcnnLayer(f[0], f[1], f[4:4 + nb], f[4 + nb:4 + nb + nt], params))
    return NcnnParam(layers)


def read_param(path) -> NcnnParam:
    from pathlib import Path

    p = Path(path)
    if p.stat().st_size > _MAX_BYTES:
        raise ParamError(f"{p.name} is {p.stat().st_size} bytes, too large for an NCNN .param text")
    try:
        return parse_param(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ParamError(f"{p.name} is not text ({e.reason} at byte {e.start})") from None


FP16_TAG = 0x01306B47  # the flag ncnn's ModelBin reads before fp16 weight data (pnnx fp16=1)


def stored_fp16(weights) -> bool:
    """True when the .bin starts with fp16 weight data (pnnx's default; fp16=0 writes fp32, tag 0)."""
    import struct

    try:
        with open(weights, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) == 4 and struct.unpack("<I", head)[0] == FP16_TAG

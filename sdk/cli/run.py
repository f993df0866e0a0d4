"""`edgekit run MODEL`: run arrays (or random inputs) through a model and save or print the outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from edgekit.cli._common import command, console, print_json


@command
def run_cmd(
    model: Path = typer.Argument(..., help="Model file or folder."),
    input: Path = typer.Option(None, "--input", "-i", help=".npz keyed by input name, or .npy (single input); "
                               "first axis = samples."),
    random: bool = typer.Option(False, "--random", help="Generate inputs from the model's signature."),
    output: Path = typer.Option(None, "--output", "-o", help="Write outputs to this .npz, keyed by output name."),
    json_out: bool = typer.Option(False, "--json", help="Print outputs as JSON."),
    backend: str = typer.Option(None, "--backend", help="Runtime to use (default: the best installed)."),
    threads: int = typer.Option(None, "--threads", min=1, help="Intra-op threads (default: the device class's, "
                                "as in bench, validate and convert)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Allow formats whose loading can run code."),
    raw_quantized: bool = typer.Option(False, "--raw-quantized", help="Feed/return raw integers on quantized I/O."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for --random."),
):
    """Run a model on inputs from a file or on random inputs."""
    import edgekit
    from edgekit.batching import predict_samples
    from edgekit.cli._files import check_output, model_files, refuse_overwrite, report_failure, write_outputs
    from edgekit.data import check_array_file, random_inputs, read_arrays
    from edgekit.errors import InputError

    if (input is None) == (not random):
        raise InputError("give exactly one of --input FILE or --random", "e.g. edgekit run model.tflite --random")
    if output is not None:  # before anything loads or runs: never overwrite the model or the inputs
        check_output(output, "--output")
        refuse_overwrite({"--output": output}, [("the model", model)]
                         + [("one of the model's files", f) for f in model_files(model)] + [("the --input file", input)])
    if input is not None:
        check_array_file(input, exclude=("labels",))  # readable, no objects, fits in memory
    with edgekit.load(model, backend=backend, threads=threads, trust_code=trust_code,
                      raw_quantized_io=raw_quantized) as m:
        if output is not None:  # files found while loading (ONNX external data)
            refuse_overwrite({"--output": output}, [("one of the model's files", f) for f in m.source.files])
        notes: list[str] = []
        if input is not None:
            feeds = read_arrays(input, m.inputs)
        else:
            feeds, notes = random_inputs(m.inputs, seed=seed, raw_quantized=raw_quantized)
        outputs = predict_samples(m, feeds)
        failed = write_outputs([("--output", output, lambda: _npz(outputs))]) if output is not None else []
        if json_out:
            print_json({"model": str(m.path), "backend": m.backend, "notes": notes,
                        "outputs": {k: {"shape": list(v.shape), "dtype": v.dtype.name, "values": v.tolist()}
                                    for k, v in outputs.items()}})
        else:
            _render(m, notes, outputs)
        report_failure(failed)
        if output is not None and not json_out:
            console().print(f"wrote {output}")


def _npz(outputs: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **outputs)
    return buf.getvalue()


def _render(m, notes: list[str], outputs: dict[str, np.ndarray]) -> None:
    from rich.table import Table

    out = console()
    for note in notes:
        out.print(f"note: {note}")
    t = Table(title=f"{m.path.name} on {m.backend}")
    for col in ("output", "shape", "dtype", "min", "mean", "max"):
        t.add_column(col)
    for k, v in outputs.items():
        num = v.dtype.kind in "biuf" and v.size
        stats = [f"{float(f(v)):.5g}" for f in (np.min, np.mean, np.max)] if num else ["", "", ""]
        t.add_row(k, str(list(v.shape)), v.dtype.name, *stats)
    out.print(t)

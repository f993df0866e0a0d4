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
    threads: int = typer.Option(None, "--threads", min=1, help="Intra-op threads."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Allow formats whose loading can run code."),
    raw_quantized: bool = typer.Option(False, "--raw-quantized", help="Feed/return raw integers on quantized I/O."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for --random."),
):
    """Run a model on inputs from a file or on random inputs."""
    import edgekit
    from edgekit.batching import predict_samples
    from edgekit.data import random_inputs, read_arrays
    from edgekit.errors import InputError

    if (input is None) == (not random):
        raise InputError("give exactly one of --input FILE or --random", "e.g. edgekit run model.tflite --random")
    with edgekit.load(model, backend=backend, threads=threads, trust_code=trust_code,
                      raw_quantized_io=raw_quantized) as m:
        notes: list[str] = []
        if input is not None:
            feeds = read_arrays(input, m.inputs)
        else:
            feeds, notes = random_inputs(m.inputs, seed=seed, raw_quantized=raw_quantized)
        outputs = predict_samples(m, feeds)
        if output is not None:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                with open(output, "wb") as f:
                    np.savez(f, **outputs)
            except OSError as e:
                raise InputError(f"cannot write {output}: {e.strerror or e}", "pass a writable .npz path") from e
        if json_out:
            print_json({"model": str(m.path), "backend": m.backend, "notes": notes,
                        "outputs": {k: {"shape": list(v.shape), "dtype": v.dtype.name, "values": v.tolist()}
                                    for k, v in outputs.items()}})
            return
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
        if output is not None:
            out.print(f"wrote {output}")

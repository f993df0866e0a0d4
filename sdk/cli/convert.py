"""`edgekit convert MODEL --to tflite,coreml,openvino,onnx`: convert, check each result, write a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli._common import STATE, command, console, print_json
from edgekit.cli._progress import progress


@command
def convert_cmd(
    model: Path = typer.Argument(..., help="Source model: .keras, .h5, SavedModel folder, .pt2, .onnx, .tflite ..."),
    to: str = typer.Option(None, "--to", help="Targets, comma-separated: tflite (or litert), coreml, openvino (or "
                           "ov), onnx, executorch, ncnn."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, fp16, int8 (static, needs --calibration) or "
                                  "int8-dynamic."),
    calibration: str = typer.Option(None, "--calibration", help="Calibration data (.npz/.npy/image folder), or "
                                    "'random' (accepted with a warning)."),
    calibration_samples: int = typer.Option(None, "--calibration-samples", min=1, help="Use at most N samples."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight quantization granularity."),
    int8_io: bool = typer.Option(False, "--int8-io", help="Integer inputs/outputs (TFLite full-integer models)."),
    palettize: int = typer.Option(None, "--palettize", help="Palettize weights to BITS (Core ML)."),
    prune: float = typer.Option(None, "--prune", min=0.0, max=0.99, help="Prune weights to SPARSITY (Core ML)."),
    weights_only_bits: int = typer.Option(None, "--weights-only-bits", help="Weight-only quantization: 8 or 4."),
    max_accuracy_drop: float = typer.Option(None, "--max-accuracy-drop", help="Top-1 points a compressed target may "
                                            "lose against the fp32 source; where static int8 misses it, the layers "
                                            "most sensitive to int8 stay float (onnx, openvino) until it holds."),
    keep_float: str = typer.Option(None, "--keep-float", help="Static int8: keep the N most sensitive layers in "
                                   "float, or the layers NAME,NAME."),
    calibrate_method: str = typer.Option(None, "--calibrate-method", help="Static int8 ranges (onnx): minmax, "
                                         "entropy or percentile."),
    activation_type: str = typer.Option(None, "--activation-type", help="Static int8 activations (onnx): u8 or s8."),
    quant_format: str = typer.Option(None, "--quant-format", help="Static int8 graph (onnx): qdq or qoperator."),
    preset: str = typer.Option(None, "--preset", help="NNCF preset (openvino): performance or mixed."),
    smooth_quant: bool = typer.Option(False, "--smooth-quant", help="NNCF SmoothQuant for transformers (openvino)."),
    check_speed: bool = typer.Option(False, "--check-speed", help="Benchmark each compressed target against its "
                                     "fp32 counterpart and flag one that is not faster."),
    input_shape: list[str] = typer.Option(None, "--input-shape", help="Fix an input's shape: NAME=1,3,224,224; "
                                          "None or -1 keeps a dim dynamic (tokens=-1,128). Repeatable. Not needed "
                                          "for dynamic dims: they are pinned from the sample where a target must."),
    sample: Path = typer.Option(None, "--sample", help=".npz/.npy inputs for the parity check (default: generated)."),
    output_dir: Path = typer.Option(Path("edgekit_out"), "--output-dir", "-o", help="Where targets, "
                                    "manifest.json and report.html go."),
    explain: bool = typer.Option(False, "--explain", help="Print each target's route, the alternatives and what "
                                 "would unlock a blocked route; convert nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON to stdout (no table)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Allow source formats whose loading can run code."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the parity check (targets are 'unverified')."),
    recipe: Path = typer.Option(None, "--recipe", help="Replay a recipe written by `edgekit tune`: its target, "
                                "precision and calibration samples (instead of --to and the compression options)."),
):
    """Convert a model to several targets, each along the best installed route, and check each against the source.

    Exit codes: 0 every target converted and passed its check (or is unverified); 1 every target converted
    but one failed its check (parity, int8 gate); 2 a user error (nothing converted); 3 a target failed to
    convert or to run (takes precedence over 1)."""
    from edgekit.conversion import convert, parse_targets
    from edgekit.options import parse_input_shapes

    from edgekit.cli._files import check_output
    from edgekit.data import check_array_file

    if to is None and recipe is None:
        from edgekit.errors import InputError

        raise InputError("no target given", "pass --to tflite,onnx,... or --recipe FILE")
    targets = parse_targets(to) if to is not None else None
    if explain:
        if targets is None:
            from edgekit.tuning.recipe import read_recipe

            targets = [read_recipe(recipe)["target"]]
        _explain(model, targets, json_out)
        return
    shapes = parse_input_shapes(input_shape, "--input-shape")
    check_output(output_dir, "--output-dir", folder=True)
    if sample is not None:
        check_array_file(sample, exclude=("labels",))
    if calibration not in (None, "random") and Path(calibration).is_file():
        check_array_file(calibration, exclude=("labels",))
    err = console(stderr=True)
    with progress(err, "converting") as steps:
        report = convert(model, targets, precision=precision, input_shapes=shapes, sample=sample,
                         output_dir=output_dir, trust_code=trust_code, verify=not no_verify, verbose=STATE["verbose"],
                         calibration=calibration, calibration_samples=calibration_samples, per_channel=per_channel,
                         int8_io=int8_io, palettize_bits=palettize, prune_sparsity=prune,
                         weights_only_bits=weights_only_bits, check_speed=check_speed,
                         max_accuracy_drop=max_accuracy_drop, keep_float=keep_float, calibrate_method=calibrate_method,
                         activation_type=activation_type, quant_format=quant_format, preset=preset,
                         smooth_quant=smooth_quant,
                         progress=steps.say, steps=steps.step, recipe=recipe)
    from edgekit.conversion_report import write_html

    report.html = write_html(report)  # beside manifest.json; one edgekit did not write is left alone
    if STATE["debug"]:
        for t in report.targets:
            if t.traceback:
                err.print(t.traceback)
    if json_out:
        print_json(report.manifest())
    else:
        _table(report)
    raise typer.Exit(report.exit_code)  # one rule: ConvertReport.exit_code


def _explain(model: Path, targets: list[str], json_out: bool) -> None:
    from edgekit.converters.planner import explain_routes

    routes = explain_routes(model, targets)
    if json_out:
        print_json(routes.to_dict())
        return
    out = console()
    out.print(f"source: {routes.source_path.name} ({routes.source.value})")
    for lines in routes.routes.values():
        for line in lines:
            out.print(f"  {line}")


def _table(report) -> None:
    from edgekit.conversion_report import rich_view

    out = console()
    out.print(rich_view(report.manifest(), width=out.width))
    out.print(f"manifest: {report.output_dir / 'manifest.json'}")
    if report.html is not None:
        out.print(f"report: {report.html}")

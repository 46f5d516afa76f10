"""`python -m bench.export`: make the deployment runtimes' exports ahead of a run, into the cache a run reads.

A fresh machine's exports of the zoo take longer than a main job's budget (Keras's own `model.export`: 1 s for a
module to 100 s for AlexNet to ONNX, on a 2-core CPU); a run pays for the ones it admits and skips the rest. Made
ahead, once per machine and versions of Keras and the converters, they cost a run nothing.
"""
from __future__ import annotations

import gc
import time

from ...core.cli import ArgumentParser, UsageError
from . import EXTRA, PRECISIONS, RUNTIMES, exports, installed, missing, module


def parse_args(argv):
    parser = ArgumentParser(prog="python -m bench.export", description=(
        "Export models for the deployment runtimes (LiteRT, ONNX Runtime, OpenVINO) with Keras's model.export, "
        "into the export cache that `pytest bench/` reads, so that a run spends none of its budget on them. "
        "A cached export is kept; a model a converter cannot handle is reported and the rest go on."))
    parser.add_argument("names", nargs="*", metavar="NAME", help="model names or wildcards ('resnet*'); default all")
    parser.add_argument("--runtime", default=",".join(RUNTIMES),
                        help=f"comma-separated, of {', '.join(RUNTIMES)} (default: all)")
    parser.add_argument("--precision", default=",".join(PRECISIONS),
                        help="comma-separated, of float32, int8 (default: both; float32 alone is about half the time)")
    parser.add_argument("--input-size", default="default", choices=("default", "small"),
                        help="each model's own input, or its small one (--bench-preset smoke)")
    parser.add_argument("--export-cache", metavar="DIR", help="the cache folder (default: $CNNBENCH_EXPORT_CACHE, "
                        "else ~/.cache/cnnbench/exports), as `pytest bench/ --export-cache`")
    return parser.parse_args(argv)


def choices(text: str, option: str, allowed) -> list[str]:
    named = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in named if name not in allowed]
    if unknown or not named:
        raise UsageError(f"{option}: unknown {unknown[0]!r} (choose from {', '.join(allowed)})" if unknown
                         else f"{option}: name at least one of {', '.join(allowed)}")
    return list(dict.fromkeys(named))


def main(argv=None) -> int:
    args = parse_args(argv)
    names_of_runtimes = choices(args.runtime, "--runtime", RUNTIMES)
    precisions = choices(args.precision, "--precision", PRECISIONS)
    absent = [name for name in names_of_runtimes if name not in installed()]
    if absent:
        raise UsageError(f"--runtime {absent[0]}: not installed ({', '.join(missing(absent[0]))} missing; the "
                         f"{EXTRA} extra: pip install -e '.[{EXTRA}]')")
    from .. import start
    start("tensorflow")  # Keras's exports for these runtimes go through TensorFlow
    import keras

    import models
    try:
        chosen = models.select(args.names or ["*"])
    except ValueError as err:
        raise UsageError(err) from None
    root = args.export_cache or exports.default_root()
    jobs = [(name, runtime, precision) for name in chosen for runtime in names_of_runtimes for precision in precisions]
    made = cached = refused = 0
    failed = []
    started = time.perf_counter()
    for name in chosen:
        model = None
        for runtime_name in names_of_runtimes:
            runtime = module(runtime_name)
            for precision in precisions:
                done = made + cached + refused + len(failed) + 1
                line = f"[{done}/{len(jobs)}] {name} {runtime.LABEL} {precision}"
                if exports.find(root, runtime, name, args.input_size, precision):
                    cached += 1
                    print(f"{line}: cached", flush=True)
                    continue
                if model is None:
                    model = models.build(name, input_shape=models.input_shape(name, args.input_size))
                reason = runtime.refuses(model.count_params())
                if reason:
                    refused += 1
                    print(f"{line}: refused ({reason})", flush=True)
                    continue
                try:
                    export = exports.make(root, runtime, model, name, args.input_size, precision)
                except Exception as err:  # noqa: BLE001  (each converter fails in its own way)
                    failed.append(f"{name} {runtime.LABEL} {precision}")
                    print(f"{line}: {exports.failure(runtime, err)}", flush=True)
                    continue
                made += 1
                print(f"{line}: {export.seconds:.1f} s, {export.size_bytes / 2**20:.1f} MiB", flush=True)
        del model
        keras.backend.clear_session()  # a long list of models must not keep every graph it traced
        gc.collect()
    minutes = (time.perf_counter() - started) / 60
    print(f"{made} made, {cached} cached, {refused} refused, {len(failed)} failed in {minutes:.1f} min; cache: {root}")
    if failed:
        print(f"failed: {'; '.join(failed)}")
    return 1 if failed else 0

"""python -m benchmarks [kernels|separable|networks] [--full] [--device cpu|cuda|all] [--threads N]
                       [--out DIR] [--layers PATTERN] [--shape SPEC ...] [--algorithms a,b]
                       [--networks a,b] [--peers a,b|none] [--onnx-cache DIR] [--dtype float32]

Without a subcommand: a quick version of all three (about 5 minutes on 2 cores). Writes results.json,
PNG plots and report.md under --out (default bench-out/) and prints the tables as it goes.

Your own layer: `kernels --shape N,C,H,K,R[,stride,pad,groups]` (repeatable; stride 1, padding "same",
groups 1 unless given) or `separable --shape n,c,k,f` (an f x f convolution n x n x c -> k against its
depthwise-separable replacement). `--layers` picks by name within each suite (kernels: the layer set's
names; separable: the comparisons' names); with --shape it adds those to your layers.

The peers (ONNX Runtime and OpenVINO, `pip install ".[peers]"`) run beside PyTorch in the kernels and
networks suites on the CPU whenever they are installed; --peers picks some or none.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import kernels

from . import layers as layerset
from . import machine, peers, suite_kernels, suite_networks, suite_separable, tables
from .backends import CpuBackend, cuda_backend_or_exit
from .timing import FULL, QUICK, Budget

SUITES = ("kernels", "separable", "networks")
SCHEMA = "convforge-bench/1"
# quick: 3 s of timed calls per network and batch, and no fewer than 2 rounds (VGG-16 at batch 8 with
# four contenders takes about 3 s a round); the breakdown and ORT's profile over NETWORK_PASSES passes
NETWORK_BUDGET = {"quick": Budget(seconds=3.0, min_rounds=2, max_rounds=50), "full": Budget(seconds=8.0, min_rounds=7)}
NETWORK_PASSES = {"quick": 3, "full": 5}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", choices=SUITES, help="run one suite (default: all three, quick)")
    p.add_argument("--full", action="store_true", help="every network, the whole separable grid, longer timings")
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="cpu")
    p.add_argument("--threads", type=int, default=kernels.get_num_threads(),
                   help="threads for our kernels and for PyTorch (default: the usable cores)")
    p.add_argument("--out", default="bench-out", help="output folder (default bench-out/)")
    p.add_argument("--layers", help="comma-separated shell patterns of the names in each suite, e.g. "
                                    "'vgg.*,mv2.dw7' (kernels) or 'mv1.*' (separable); not used by networks")
    p.add_argument("--shape", action="append", default=[], metavar="SPEC",
                   help=f"your own layer (repeatable): kernels {layerset.SHAPE_FIELDS}, "
                        f"separable {suite_separable.SHAPE_FIELDS}")
    p.add_argument("--algorithms", help=f"comma-separated subset of {','.join(kernels.ALGORITHMS)}")
    p.add_argument("--networks", help="comma-separated network names (default: the eight of the inference-plan "
                                      "issue's bars; every network with --full)")
    p.add_argument("--peers", help=f"comma-separated subset of {','.join(peers.PEERS)}, or 'none' (default: "
                                   f"every one installed; {peers.INSTALL_HINT})")
    p.add_argument("--onnx-cache", default=peers.default_cache_dir(),
                   help="folder of the networks' ONNX exports, reused across runs (default: %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error(f"--threads must be >= 1, got {a.threads}")
    a.algorithms = [s.strip() for s in a.algorithms.split(",")] if a.algorithms else list(kernels.ALGORITHMS)
    bad = [s for s in a.algorithms if s not in kernels.ALGORITHMS]
    if bad:
        p.error(f"--algorithms: unknown {bad}; choose from {','.join(kernels.ALGORITHMS)}")
    a.networks = [s.strip() for s in a.networks.split(",")] if a.networks else None
    names = None if a.peers is None else [] if a.peers.strip() == "none" else [s.strip() for s in a.peers.split(",")]
    try:
        a.peer_versions, a.peers_missing = peers.select(names)
    except ValueError as e:
        p.error(str(e))
    if a.layers and a.suite == "networks":
        p.error("--layers picks layers of the kernels and separable suites; networks takes --networks a,b")
    if a.shape and a.suite not in ("kernels", "separable"):
        p.error(f"--shape needs the suite it is for: kernels --shape {layerset.SHAPE_FIELDS} or "
                f"separable --shape {suite_separable.SHAPE_FIELDS}")
    try:
        a.layer_list, a.separable_items = select_work(a)
    except ValueError as e:
        p.error(str(e))
    return a


def select_work(a):
    """-> (the kernels suite's layers, the separable suite's comparisons): None for a suite that does
    not run. A --layers pattern must match in the suite it is given for; without a subcommand, a suite
    where it matches nothing is skipped (a note says so) unless it matches nothing anywhere."""
    suites = [a.suite] if a.suite else ["kernels", "separable"]
    pickers = {"kernels": (layerset.parse_shape, layerset.select, lambda: list(layerset.LAYERS)),
               "separable": (suite_separable.parse_shape, lambda pat: suite_separable.select(pat, a.full),
                             lambda: suite_separable.comparisons(a.full))}
    picked, errors = {"kernels": None, "separable": None}, []
    for suite in suites:
        if suite not in pickers:
            continue
        parse, select, everything = pickers[suite]
        own = [parse(text) for text in a.shape]
        if a.layers:
            try:
                picked[suite] = own + select(a.layers)
            except ValueError as e:
                errors.append(str(e))
        else:
            picked[suite] = own or everything()
    if errors and (a.suite or all(v is None for v in picked.values())):
        raise ValueError("; ".join(errors))
    a.skipped = errors
    return picked["kernels"], picked["separable"]


def make_console():
    # a wide table even when piped (make bench | tee ...): rich would otherwise wrap at 80 columns
    return Console(width=None if sys.stdout.isatty() else 200)


def backends_for(device, threads, console, peer_versions=None):
    out = []
    if device in ("cpu", "all"):
        out.append(CpuBackend(threads, peer_versions))
    if device in ("cuda", "all"):
        if device == "all" and not kernels.gpu_available():
            console.print("[yellow]--device all: no usable CUDA device, running on the CPU only[/]")
        else:
            out.append(cuda_backend_or_exit())
    return out


def main(argv=None):
    args = parse_args(argv)
    console = make_console()
    backends = backends_for(args.device, args.threads, console, args.peer_versions)   # fails early without a GPU
    machine.set_threads(args.threads)
    suites = [args.suite] if args.suite else list(SUITES)
    mode = "full" if args.full else "quick"
    budget = FULL if args.full else QUICK
    for note in args.skipped:
        console.print(f"[yellow]{note}: that suite is skipped[/]")
    if args.peers_missing and {"kernels", "networks"} & set(suites):
        console.print(f"[yellow]peers not installed, not run: {', '.join(args.peers_missing)} "
                      f"({peers.INSTALL_HINT})[/]")
    if args.layer_list is None:
        suites = [s for s in suites if s != "kernels"]
    if args.separable_items is None:
        suites = [s for s in suites if s != "separable"]
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()
    results = {"schema": SCHEMA, "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
               "mode": mode, "suites": suites, "options": {"threads": args.threads, "dtype": args.dtype,
                                                          "layers": args.layers, "shapes": args.shape,
                                                          "algorithms": args.algorithms,
                                                          "peers": list(args.peer_versions),
                                                          "peers_missing": args.peers_missing},
               "machine": machine.describe(args.threads), "devices": {}, "ceilings": {}}
    for s in SUITES:
        results[s] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        for backend in backends:
            task = progress.add_task(f"ceilings ({backend.name})", total=1)
            results["devices"][backend.name] = backend.describe()
            if backend.name == "cpu":
                ceilings = machine.cpu_ceilings(args.threads, quick=not args.full)
            else:
                from .gpu_peak import gpu_ceilings
                ceilings = gpu_ceilings(quick=not args.full)
            results["ceilings"][backend.name] = ceilings
            progress.advance(task)
            progress.console.print(tables.ceilings_table(backend.name, ceilings))
            if "kernels" in suites:
                sec = suite_kernels.run(backend, layers=args.layer_list, algorithms=args.algorithms,
                                        dtype=args.dtype, budget=budget, ceilings=ceilings, progress=progress)
                results["kernels"][backend.name] = sec
                progress.console.print(tables.kernels_table(sec))
                for t in tables.kernels_summary_tables(sec):
                    progress.console.print(t)
            if "separable" in suites:
                sec = suite_separable.run(backend, items=args.separable_items, algorithms=args.algorithms,
                                          dtype=args.dtype, budget=budget, ceilings=ceilings, progress=progress)
                results["separable"][backend.name] = sec
                progress.console.print(tables.separable_table(sec))
            if "networks" in suites:
                sec = suite_networks.run(backend, full=args.full, networks=args.networks, dtype=args.dtype,
                                         budget=NETWORK_BUDGET[mode], progress=progress, ceilings=ceilings,
                                         cache_dir=args.onnx_cache, passes=NETWORK_PASSES[mode])
                results["networks"][backend.name] = sec
                for t in tables.networks_tables(sec):
                    progress.console.print(t)
    results["wall_s"] = time.perf_counter() - t_start
    results["load_average_end"] = machine.load_average()
    busy = max((results["machine"]["load_average"] or [0])[0], (results["load_average_end"] or [0])[0])
    if busy > results["machine"]["usable_cpus"]:
        console.print(f"[yellow]load average {busy:.1f} on {results['machine']['usable_cpus']} cores: other "
                      f"processes shared the CPU, so times and ceilings are lower than this machine can do "
                      f"(ratios from interleaved runs hold better)[/]")
    path = os.path.join(args.out, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=_json_default)
    from . import plots, report
    images = plots.make_all(results, args.out)
    report_path = report.write(results, images, args.out)
    console.print(f"wrote {path}, {report_path} and {len(images)} plot(s) in {results['wall_s']:.0f} s")
    return 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


if __name__ == "__main__":
    sys.exit(main())

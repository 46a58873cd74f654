"""The CPU inference engines people pick, as peers of our networks and layers: ONNX Runtime (MLAS) and
OpenVINO (oneDNN), each at our thread count, on an ONNX file holding the same weights.

- ONNX Runtime: CPU execution provider, graph optimisations ORT_ENABLE_ALL (batch-norm folding, the
  NCHWc blocked layout, Conv + Add + activation fusion), intra-op threads = ours, inter-op threads 1,
  sequential execution.
- OpenVINO: CPU device, PERFORMANCE_HINT LATENCY, INFERENCE_PRECISION_HINT f32 (without it OpenVINO
  runs bf16 on a CPU with AVX-512 BF16, which is not fp32 against fp32), INFERENCE_NUM_THREADS = ours.

A network's ONNX file is its torch.nn twin exported with `torch.onnx.export(..., dynamo=False)`, one
file per network and input shape, cached under --onnx-cache (default: convforge-onnx in the temp
folder) and named by a digest of the weights, the torch version and the opset, so a cached file always
holds the weights it is timed against. A single layer's file is built with onnx.helper. Export and
session creation stay out of every timing.

A peer is timed only when its output agrees with ours: ||y_peer - y_ours|| / ||y_ours|| <= TOLERANCE.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
import warnings

import numpy as np

PEERS = ("onnxruntime", "openvino")
LABEL = {"pytorch": "PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
SHORT = {"pytorch": "PyTorch", "onnxruntime": "ORT", "openvino": "OpenVINO"}
TOLERANCE = 1e-3
OPSET = 17
INSTALL_HINT = 'pip install ".[peers]"'


def installed() -> tuple[dict, dict]:
    """-> (name -> version of each peer that imports, name -> why not for the others)."""
    found, missing = {}, {}
    for name in PEERS:
        try:
            mod = importlib.import_module(name)
            found[name] = getattr(mod, "__version__", "?")
        except Exception as e:
            missing[name] = f"{type(e).__name__}: {e}"
    return found, missing


def select(names: list[str] | None) -> tuple[dict, dict]:
    """The peers to run: `names` (None: every installed one; []: none). -> (name -> version of each,
    name -> why not, for the installed-peers default's missing ones). A peer asked for by name that
    does not import is an error."""
    if names == []:
        return {}, {}
    found, missing = installed()
    if names is None:
        return found, missing
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise ValueError(f"--peers: unknown {unknown}; choose from {','.join(PEERS)} or 'none'")
    absent = [n for n in names if n not in found]
    if absent:
        raise ValueError(f"--peers: {', '.join(absent)} not installed ({'; '.join(missing[n] for n in absent)}); "
                         f"install them with {INSTALL_HINT}")
    return {n: found[n] for n in names}, {}


def rel_error(y, ref) -> float:
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    if y.shape != ref.shape:
        return float("inf")
    return float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-300))


class OnnxRuntime:
    """One ONNX Runtime inference session; calling it runs one forward pass and returns the output."""

    def __init__(self, model_path: str, threads: int, profile_prefix: str | None = None, spinning: bool = False):
        ort = importlib.import_module("onnxruntime")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # ORT's idle workers spin after every run by default, taking the cores from the contender timed
        # next (measured: an interleaved PyTorch 1x1 conv 14% and ours 33% slower); off, ORT itself is
        # ~4% slower on that layer. Interleaved timing needs every contender to leave the cores idle.
        # (benchmarks.alone times each engine in a process of its own, where spinning is ORT's default)
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        so.log_severity_level = 3                   # errors only: no warnings between the tables
        if profile_prefix is not None:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        self.session = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.settings = {"version": ort.__version__, "providers": self.session.get_providers(),
                         "graph_optimization_level": "ORT_ENABLE_ALL", "intra_op_num_threads": threads,
                         "inter_op_num_threads": 1, "execution_mode": "ORT_SEQUENTIAL",
                         "intra_op.allow_spinning": int(spinning)}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]


class OpenVino:
    """One OpenVINO compiled model on the CPU and its infer request; calling it runs one forward pass
    and returns a copy of the output (the input is shared, not copied, as ours and ORT's are)."""

    def __init__(self, model_path: str, threads: int):
        ov = importlib.import_module("openvino")
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                  "INFERENCE_NUM_THREADS": threads}
        self.compiled = ov.Core().compile_model(model_path, "CPU", config)
        self.request = self.compiled.create_infer_request()
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        if precision != ov.Type.f32:
            raise RuntimeError(f"OpenVINO compiled the model at precision {precision.get_type_name()}, not f32: "
                               f"its times would not be fp32 against fp32")
        # what it runs with, read back from the compiled model (enums as their names, for results.json)
        read = {k: self.compiled.get_property(k)
                for k in ("PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS", "ENABLE_CPU_PINNING")}
        self.settings = {"version": ov.__version__, "device": "CPU", "INFERENCE_PRECISION_HINT": "f32",
                         **{k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in read.items()}}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer({0: x}, share_inputs=True)[0]


SESSIONS = {"onnxruntime": OnnxRuntime, "openvino": OpenVino}


def open_session(name: str, model_path: str, threads: int):
    return SESSIONS[name](model_path, threads)


def default_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "convforge-onnx")


def _digest(state: dict, extra: str) -> str:
    """sha256 of a state dict (names, dtypes, shapes, bytes) and `extra`: the key of a cached file."""
    h = hashlib.sha256(extra.encode())
    for k in sorted(state):
        v = np.ascontiguousarray(state[k])
        h.update(f"{k}:{v.dtype.str}:{v.shape};".encode())
        h.update(memoryview(v).cast("B"))
    return h.hexdigest()[:16]


def _save_atomically(path: str, write):
    """write(tmp_path), then rename: a run killed mid-export, or two runs at once, leave no partial file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=os.path.dirname(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def network_onnx(name: str, model, state: dict, shape: tuple, cache_dir: str | None = None) -> str:
    """The ONNX file of torch model `model` (the twin of network `name`, holding `state`) for input
    `shape`: exported with torch.onnx.export(dynamo=False) unless the cache already holds it. -> path."""
    import torch
    key = _digest(state, f"{name}|{tuple(shape)}|torch {torch.__version__}|opset {OPSET}")
    path = os.path.join(cache_dir or default_cache_dir(), f"{name}-{'x'.join(map(str, shape))}-{key}.onnx")
    if not os.path.exists(path):
        def export(tmp):
            with warnings.catch_warnings():           # the TorchScript exporter's deprecation notices
                warnings.simplefilter("ignore")
                torch.onnx.export(model.eval(), (torch.zeros(shape),), tmp, dynamo=False, opset_version=OPSET,
                                  input_names=["input"], output_names=["output"])
        _save_atomically(path, export)
    return path


def conv_onnx(path: str, x_shape, w: np.ndarray, b: np.ndarray | None, geometry):
    """Write a one-Conv ONNX model (float32 NCHW, the weights as initialisers) of `geometry` to `path`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    g = geometry
    inits = [numpy_helper.from_array(np.ascontiguousarray(w, np.float32), "W")]
    inputs = ["input", "W"]
    if b is not None:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(b, np.float32), "B"))
        inputs.append("B")
    node = helper.make_node("Conv", inputs, ["output"], kernel_shape=[g.R, g.S],
                            strides=[g.sh, g.sw], dilations=[g.dh, g.dw],
                            pads=[g.pad_top, g.pad_left, g.pad_bottom, g.pad_right], group=g.groups)
    graph = helper.make_graph([node], "conv",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(g.out_shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 8)     # what every peer version reads
    onnx.save(model, path)


def layer_sessions(peers: list[str], x_shape, w, b, geometry, threads: int) -> dict:
    """name -> session of each peer on a one-Conv model; the model file lives only while they load."""
    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        conv_onnx(path, x_shape, w, b, geometry)
        return {p: open_session(p, path, threads) for p in peers}
    finally:
        os.remove(path)

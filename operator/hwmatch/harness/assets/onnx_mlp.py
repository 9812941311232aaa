"""``onnx-mlp``: a small neural network served by ONNX Runtime, in fp32 or dynamically quantised int8.

The network is trained at setup (scikit-learn's MLPClassifier on digits, about
a second) and written as an ONNX graph by hand with ``onnx.helper``
(MatMul, Add, Relu, Softmax), so the asset needs no download and no converter.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwmatch.api import MetricSpec, Parameter, Range
from hwmatch.api.asset import Scalar
from hwmatch.harness.assets.base import Asset
from hwmatch.harness.assets.digits import SEED, Split, load_split
from hwmatch.harness.assets.forest import BATCH_SIZES

#: An opset and IR version every ONNX Runtime since 1.15 executes.
OPSET = 17
IR_VERSION = 9


def mlp_graph(weights: list[np.ndarray], biases: list[np.ndarray]) -> Any:
    """An ONNX model ``softmax(relu(x W1 + b1) ... W_n + b_n)`` with a dynamic batch dimension."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []
    current = "input"
    for i, (w, b) in enumerate(zip(weights, biases)):
        initializers += [numpy_helper.from_array(w.astype(np.float32), f"W{i}"),
                         numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [current, f"W{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"])]
        current = f"z{i}"
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"h{i}"]))
            current = f"h{i}"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", weights[0].shape[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", weights[-1].shape[1]])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hwmatch")
    model.ir_version = IR_VERSION
    return model


def quantize_int8(model: Any) -> bytes:
    """Dynamic int8 quantisation of the MatMul weights (activations quantised at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="hwmatch-onnx-") as tmp:
        source, target = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        onnx.save(model, source)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # it advises pre-processing on the root logger; a 2-layer MLP needs none
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        return target.read_bytes()


@dataclass(frozen=True)
class OnnxModel:
    """The trained network in an ONNX Runtime session, with the data it was trained on and what it cost."""

    session: Any
    split: Split
    train_time_s: float
    model_bytes: int

    def quality(self) -> dict[str, float]:
        """Accuracy on the held-out split, computed by the session itself (so it reflects quantisation)."""
        (probabilities,) = self.session.run(None, {"input": self.split.x_test})
        accuracy = float(np.mean(probabilities.argmax(axis=1) == self.split.y_test))
        return {"accuracy": accuracy, "train_time_s": self.train_time_s, "model_bytes": float(self.model_bytes)}


def build_model(params: Mapping[str, Scalar]) -> OnnxModel:
    """Train the MLP of ``hidden`` units, write it as ONNX (int8-quantised if asked), open a session of ``threads``.

    Shared by the batch asset and the model server, so both measure the same network.
    """
    import onnxruntime as ort
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    split = load_split()
    start = time.perf_counter()
    # One BLAS thread: training is untimed, and a fixed thread count keeps the weights bit-identical.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(int(params["hidden"]),), solver="adam", max_iter=30,
                            batch_size=128, learning_rate_init=3e-3, random_state=SEED)
        mlp.fit(split.x_train, split.y_train)
    train_time_s = time.perf_counter() - start
    model = mlp_graph(mlp.coefs_, mlp.intercepts_)
    payload = quantize_int8(model) if params["precision"] == "int8" else model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(params["threads"])
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    return OnnxModel(session, split, train_time_s, len(payload))


class OnnxMlpAsset(Asset):
    """A one-hidden-layer MLP on digits run by ONNX Runtime's CPU provider."""

    name = "onnx-mlp"
    description = "ONNX Runtime MLP on the digits data set (fp32 or int8): batch inference latency and accuracy"
    parameters = (
        Parameter(name="batch_size", type="int", values=BATCH_SIZES, description="Images per inference call."),
        Parameter(name="threads", type="int", range=Range(min=1, max=8), description="ONNX Runtime intra-op threads."),
        Parameter(name="precision", type="categorical", values=["fp32", "int8"],
                  description="fp32, or int8 weights by onnxruntime.quantization.quantize_dynamic."),
        Parameter(name="hidden", type="int", values=[16, 32, 64, 128, 256], description="Hidden layer width."),
    )
    metrics = (
        MetricSpec(name="accuracy", goal="maximize"),
        MetricSpec(name="train_time_s", goal="minimize", unit="s"),
        MetricSpec(name="model_bytes", goal="minimize", unit="B"),
    )
    defaults: ClassVar[Mapping[str, Scalar]] = {"batch_size": 64, "threads": 1, "precision": "fp32", "hidden": 64}
    samples = 1000

    def setup(self, params: Mapping[str, Scalar]) -> None:
        self._params = dict(params)
        self._model = build_model(params)
        self._feed = {"input": self._model.split.batch(int(params["batch_size"]))}

    @property
    def batch_size(self) -> int:
        return int(self._params["batch_size"])

    def run_batch(self) -> None:
        self._model.session.run(None, self._feed)

    def quality(self) -> dict[str, float]:
        return self._model.quality()

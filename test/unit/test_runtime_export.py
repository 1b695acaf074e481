"""ONNX export: `uam export` CLI, onnx.checker, metadata, static I/O, cache reuse, and every operator
of the exported graph inside TensorRT's supported list (data/tensorrt_onnx_ops.json)."""

from __future__ import annotations

import argparse
import json

import onnx
import pytest
import torch
from onnx import helper

from uam_ros.model.checkpoint import init_checkpoint, load_checkpoint
from uam_ros.runtime import onnx_export
from uam_ros.runtime.onnx_export import (
    DEFAULT_OPSET,
    ExportError,
    cached_onnx_path,
    ensure_onnx,
    graph_ops,
    io_shapes,
    model_hash,
    read_metadata,
    tensorrt_op_table,
    tensorrt_unsupported_ops,
)

torch.set_num_threads(1)

from tiny_model import JOINTS, TINY  # noqa: E402  (shared tiny config)


def make_checkpoint(directory, **overrides):
    return init_checkpoint(directory, state_dim=4, action_dim=4, joint_names=JOINTS, robot_name="toy", seed=0,
                           instructions=["pick up the red cube", "put the cube in the bowl"],
                           config_overrides={**TINY, **overrides})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export through the CLI into a cache shared by this session's runtime tests."""
    cache = tmp_path_factory.getbasetemp() / "uam-runtime-cache"
    ckpt = make_checkpoint(tmp_path_factory.mktemp("export") / "ckpt")
    parser = argparse.ArgumentParser()
    onnx_export.add_arguments(parser)
    args = parser.parse_args(["--model", str(ckpt), "--cache-dir", str(cache)])
    assert onnx_export.run(args) == 0
    return ckpt, cache, cached_onnx_path(load_checkpoint(ckpt), cache, DEFAULT_OPSET)


def test_export_passes_the_checker_with_static_io_and_opset(exported):
    _, _, path = exported
    assert path.is_file()
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [DEFAULT_OPSET]
    assert DEFAULT_OPSET >= 17
    assert io_shapes(path) == {"image": ((1, 3, 32, 32), "float32"), "tokens": ((1, 10), "int64"),
                               "state": ((1, 4), "float32"), "noise": ((1, 6, 4), "float32")}
    outputs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert outputs == {"actions": [1, 6, 4], "future_frame": [1, 3, 8, 8]}


def test_metadata_identifies_the_checkpoint(exported):
    ckpt, _, path = exported
    loaded = load_checkpoint(ckpt)
    meta = read_metadata(path)
    assert meta["uam.weights_sha256"] == loaded.weights_sha256
    assert meta["uam.kind"] == "uam"
    assert json.loads(meta["uam.model_config"]) == loaded.config.to_dict()
    assert meta["uam.model_hash"] == model_hash(loaded)
    assert meta["uam.opset"] == str(DEFAULT_OPSET)
    assert json.loads(meta["uam.joint_names"]) == JOINTS


def test_every_exported_operator_is_supported_by_tensorrt(exported):
    _, _, path = exported
    table = tensorrt_op_table()
    assert table["source"].startswith("https://github.com/onnx/onnx-tensorrt/")
    assert table["tensorrt_version"].startswith("10.")
    assert table["opset_min"] <= DEFAULT_OPSET <= table["opset_max"]
    ops = graph_ops(path)
    listed = sorted(f"{d}::{o}" if d else o for d, o in ops)
    print("operators in the exported graph:", " ".join(listed))
    assert {"MatMul", "Softmax", "LayerNormalization", "Conv", "ConvTranspose"} <= {o for _, o in ops}
    assert tensorrt_unsupported_ops(ops) == [], f"not in TensorRT {table['tensorrt_version']}'s list"


def test_the_op_check_catches_unsupported_ops():
    """A graph with ops TensorRT lacks (and a custom-domain op) must fail the same check."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Unique", ["r"], ["u"]),
             helper.make_node("Custom", ["u"], ["y"], domain="com.example")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]))
    assert tensorrt_unsupported_ops(graph_ops(model)) == ["Unique", "com.example::Custom"]
    assert "Unique" in tensorrt_op_table()["unsupported"]


def test_cache_is_reused_and_a_corrupt_cached_file_is_exported_again(exported, monkeypatch):
    ckpt, cache, path = exported
    hit = ensure_onnx(ckpt, cache_dir=cache)
    assert hit.cached and hit.path == path and hit.tensorrt_unsupported == ()

    calls = []
    monkeypatch.setattr(onnx_export, "export_onnx", lambda *a, **k: calls.append(k) or "re-exported")
    copy = cache.parent / "corrupt-cache"
    target = cached_onnx_path(load_checkpoint(ckpt), copy)
    target.parent.mkdir(parents=True)
    target.write_bytes(path.read_bytes()[:1000])  # truncated
    messages = []
    assert ensure_onnx(ckpt, cache_dir=copy, progress=messages.append) == "re-exported"
    assert calls and "does not load" in messages[-1]

    other = make_checkpoint(cache.parent / "other-ckpt", num_steps=2)  # same weights, other graph
    assert model_hash(load_checkpoint(other)) != model_hash(load_checkpoint(ckpt))
    target = cached_onnx_path(load_checkpoint(other), copy)
    target.parent.mkdir(parents=True)
    target.write_bytes(path.read_bytes())  # a valid file, but for the other model
    assert ensure_onnx(other, cache_dir=copy, progress=messages.append) == "re-exported"
    assert "model hash" in messages[-1]


def test_bad_arguments_are_export_errors(exported, tmp_path):
    ckpt, _, _ = exported
    with pytest.raises(ExportError, match="opset must be >= 17"):
        onnx_export.export_onnx(ckpt, tmp_path / "m.onnx", opset=13)
    with pytest.raises(ExportError, match="exporter must be one of"):
        onnx_export.export_onnx(ckpt, tmp_path / "m.onnx", exporter="tf")


def test_cli_out_file_with_the_legacy_exporter_at_opset_17(exported, tmp_path, capsys):
    ckpt, _, _ = exported
    parser = argparse.ArgumentParser()
    onnx_export.add_arguments(parser)
    out = tmp_path / "sub" / "policy.onnx"
    args = parser.parse_args(["--model", str(ckpt), "--out", str(out), "--opset", "17", "--exporter", "torchscript"])
    assert onnx_export.run(args) == 0
    printed = capsys.readouterr().out
    assert "[export 4/5] parity ok" in printed and str(out) in printed
    onnx.checker.check_model(str(out), full_check=True)
    meta = read_metadata(out)
    assert (meta["uam.exporter"], meta["uam.opset"]) == ("torchscript", "17")
    assert meta["uam.weights_sha256"] == load_checkpoint(ckpt).weights_sha256
    assert tensorrt_unsupported_ops(graph_ops(out)) == []
    assert [p.name for p in out.parent.iterdir()] == ["policy.onnx"]  # no staging files left

"""The TensorRT build path and runtime against a fake ``tensorrt`` that behaves like 10.x and 11.x
(tests/tensorrt_fake): which flags each version is asked for, which it refuses, the FP16 copies the
strongly typed builds read, the timing cache, the profile, DLA, the sidecar and the load-time refusal
of a plan built for another GPU or TensorRT."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgecv.errors import ArtifactError, InvalidOptionError, StageError
from edgecv.runfolder import INT8_ONNX, ONNX, sha256_file
from edgecv.tensorrt import build as T
from edgecv.tensorrt.fp16 import FP16_ONNX, INT8_FP16_ONNX, write_fp16_copy
from tests.tensorrt_fake import install

from .conftest import SHAPE, random_input

V10, V11 = "10.3.0", "11.1.0"


def build(tmp_path, onnx_path, precision, *, version, name=None, **kw):
    engine = tmp_path / (name or f"model.{precision}.engine")
    kw.setdefault("dynamic_batch", True)
    info = T.build_engine(onnx_path, engine, precision=precision, input_name="input", input_shape=SHAPE, **kw)
    T.write_sidecar(engine, info)
    return engine, info


@pytest.fixture
def sources(tmp_path, onnx_files):
    """model.onnx, model.int8.onnx and their FP16 copies, as a run folder holds them."""
    import shutil

    out = {}
    for key, name in (("fp32", ONNX), ("int8", INT8_ONNX)):
        out[name] = shutil.copy2(onnx_files[key], tmp_path / name)
    write_fp16_copy(tmp_path / ONNX, tmp_path / FP16_ONNX)
    write_fp16_copy(tmp_path / INT8_ONNX, tmp_path / INT8_FP16_ONNX)
    return tmp_path


# --- recipes: what each version is asked for (pure) -----------------------------------------------


@pytest.mark.parametrize("version", [V10, "10.16.1", V11])
@pytest.mark.parametrize(("precision", "source"), [("fp32", ONNX), ("fp16", FP16_ONNX), ("int8", INT8_FP16_ONNX)])
def test_strongly_typed_by_default_precision_from_the_graph(version, precision, source):
    recipe = T.engine_recipe(version, precision)
    assert recipe.strongly_typed and recipe.source == source and recipe.builder_flags == ()
    # 10.x opts in with the creation flag; 11 is strongly typed only and the flag is deprecated there.
    assert recipe.network_flags == (("STRONGLY_TYPED",) if version.startswith("10") else ())


def test_weak_typing_only_on_10():
    assert T.engine_recipe(V10, "int8", weak_typing=True).builder_flags == ("INT8", "FP16")
    assert T.engine_recipe(V10, "fp16", weak_typing=True).source == ONNX
    with pytest.raises(InvalidOptionError, match="TensorRT 11 builds strongly typed only"):
        T.engine_recipe(V11, "fp16", weak_typing=True)


def test_dla_needs_reduced_precision_and_falls_back_to_the_gpu():
    assert T.engine_recipe(V10, "fp16", dla_core=1).builder_flags == ("GPU_FALLBACK",)
    with pytest.raises(InvalidOptionError, match="DLA runs FP16 or INT8"):
        T.engine_recipe(V10, "fp32", dla_core=0)


def test_a_weak_typing_recipe_cannot_reach_11(monkeypatch, sources):
    """Even a hand-made recipe with 10.x's flags fails on 11 before anything is built."""
    install(monkeypatch, V11)
    bad = T.Recipe(V11, "fp16", ONNX, strongly_typed=False, builder_flags=("FP16",))
    with pytest.raises(StageError, match="no BuilderFlag.FP16"):
        build(sources, sources / ONNX, "fp16", version=V11, recipe=bad)


# --- builds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [V10, V11])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_asks_each_version_for_what_it_has(monkeypatch, sources, version, precision):
    trt = install(monkeypatch, version)
    recipe = T.engine_recipe(version, precision)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecated flag (STRONGLY_TYPED on 11) would raise here
        engine, info = build(
            sources,
            sources / recipe.source,
            precision,
            version=version,
            recipe=recipe,
            max_batch=8,
            opt_batch=2,
            workspace_bytes=1 << 30,
            timing_cache=sources / T.TIMING_CACHE,
        )
    calls = trt._fake.calls
    flags = calls.find("create_network")[0][0]
    assert flags == (1 << 1 if version == V10 else 0)
    assert calls.find("set_flag") == []  # no precision flags: the graph decides
    assert calls.find("set_memory_pool_limit")[0] == (trt.MemoryPoolType.WORKSPACE, 1 << 30)
    assert calls.find("set_shape")[0] == ("input", (1, 3, 16, 16), (2, 3, 16, 16), (8, 3, 16, 16))
    assert calls.find("parse_from_file")[0][0].endswith(recipe.source)
    assert calls.find("build_serialized_network")[0] == (True, [])
    sidecar = json.loads(engine.with_suffix(".json").read_text())
    assert sidecar["tensorrt"] == version and sidecar["precision"] == precision and sidecar["strongly_typed"]
    assert sidecar["gpu"] == "NVIDIA Fake GPU" and sidecar["compute_capability"] == "8.7"
    assert sidecar["profile"] == {"min": [1, 3, 16, 16], "opt": [2, 3, 16, 16], "max": [8, 3, 16, 16]}
    assert sidecar["onnx_sha256"] == sha256_file(sources / recipe.source)
    assert engine.read_bytes().startswith(b"FAKETRT")  # the plan untouched: nothing prepended


def test_weak_typing_on_10_sets_int8_and_fp16_on_the_qdq_graph(monkeypatch, sources):
    trt = install(monkeypatch, V10)
    recipe = T.engine_recipe(V10, "int8", weak_typing=True)
    _, info = build(sources, sources / recipe.source, "int8", version=V10, recipe=recipe)
    assert trt._fake.calls.find("create_network")[0][0] == 0
    assert [c[0] for c in trt._fake.calls.find("set_flag")] == ["INT8", "FP16"]
    assert info["source_onnx"] == INT8_ONNX and not info["strongly_typed"]


def test_the_fake_refuses_precision_flags_on_a_strongly_typed_network(monkeypatch, sources):
    install(monkeypatch, V10)
    mixed = T.Recipe(
        V10, "fp16", FP16_ONNX, strongly_typed=True, network_flags=("STRONGLY_TYPED",), builder_flags=("FP16",)
    )
    with pytest.raises(StageError, match="strongly typed"):
        build(sources, sources / FP16_ONNX, "fp16", version=V10, recipe=mixed)


def test_dynamic_input_without_profile_fails_to_build(monkeypatch, sources):
    install(monkeypatch, V10)
    with pytest.raises(StageError, match="no optimization profile"):
        build(sources, sources / ONNX, "fp32", version=V10, dynamic_batch=False)


def test_timing_cache_is_written_and_reused(monkeypatch, sources):
    cache = sources / T.TIMING_CACHE
    trt = install(monkeypatch, V10)
    _, first = build(sources, sources / FP16_ONNX, "fp16", version=V10, timing_cache=cache)
    assert cache.is_file() and trt._fake.calls.find("create_timing_cache")[0] == (0,)
    _, second = build(sources, sources / FP16_ONNX, "fp16", version=V10, timing_cache=cache, name="again.engine")
    assert trt._fake.calls.find("create_timing_cache")[1][0] > 0  # the file the first build wrote
    assert trt._fake.calls.find("set_timing_cache")[1][0] >= 1  # the second build starts from the first's entries
    assert any("timing cache reused" in n for n in second["notes"])


def test_dla_core_with_gpu_fallback(monkeypatch, sources):
    trt = install(monkeypatch, V10, gpu={"dla_cores": 2})
    _, info = build(sources, sources / FP16_ONNX, "fp16", version=V10, dla_core=1)
    calls = trt._fake.calls
    assert calls.find("default_device_type") == [("DLA",)] and calls.find("DLA_core") == [(1,)]
    assert [c[0] for c in calls.find("set_flag")] == ["GPU_FALLBACK"]
    assert info["dla_core"] == 1


def test_dla_core_that_does_not_exist(monkeypatch, sources):
    install(monkeypatch, V10, gpu={"dla_cores": 0})
    with pytest.raises(InvalidOptionError, match="0 DLA core"):
        build(sources, sources / FP16_ONNX, "fp16", version=V10, dla_core=0)


def test_parser_errors_name_the_node(monkeypatch, tmp_path):
    from onnx import TensorProto, helper

    install(monkeypatch, V10)
    graph = helper.make_graph(
        [helper.make_node("Unique", ["input"], ["y"], name="uniq")],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "u.onnx")
    with pytest.raises(StageError, match="uniq"):
        build(tmp_path, tmp_path / "u.onnx", "fp32", version=V10, dynamic_batch=False)


def test_no_gpu_is_a_user_error(monkeypatch):
    from edgecv.errors import BackendUnavailableError

    install(monkeypatch, V10, gpu={"count": 0})
    with pytest.raises(BackendUnavailableError, match="no CUDA device"):
        T.require_tensorrt()


# --- the FP16 copies ----------------------------------------------------------------------------


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_fp16_copy_keeps_float32_io_and_matches(sources):
    model = onnx.load(str(sources / FP16_ONNX))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    x = random_input(4)
    ref, got = _run(sources / ONNX, x), _run(sources / FP16_ONNX, x)
    assert got.dtype == np.float32
    assert np.abs(ref - got).max() < 2e-3 * max(1.0, np.abs(ref).max())


def test_int8_copy_has_fp16_scales_so_float_layers_run_in_fp16(sources):
    """Strongly typed TensorRT takes a DequantizeLinear's output type from its scale (NvInfer.h)."""
    model = onnx.load(str(sources / INT8_FP16_ONNX))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19
    inits = {t.name: t for t in model.graph.initializer}
    scales = [n.input[1] for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert scales and all(inits[s].data_type == onnx.TensorProto.FLOAT16 for s in scales if s in inits)
    x = random_input(4)
    ref, got = _run(sources / INT8_ONNX, x), _run(sources / INT8_FP16_ONNX, x)
    assert np.abs(ref - got).max() < 0.05 * max(1.0, np.abs(ref).max())
    from edgecv.tensorrt.preflight import check_tensorrt

    assert check_tensorrt(model).errors == []


# --- the runtime ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [V10, V11])
def test_runtime_loads_and_runs_the_plan(monkeypatch, sources, version):
    install(monkeypatch, version)
    engine, _ = build(sources, sources / FP16_ONNX, "fp16", version=version, max_batch=4)
    from edgecv.runtime import load

    with load(engine) as rt:
        assert rt.precision == "fp16" and rt.inputs[0].max_shape == (4, 3, 16, 16)
        x = random_input(3)
        out = rt(x)["logits"]
        assert out.shape == (3, 5) and out.dtype == np.float32
        # The fake runs the plan's ONNX in ONNX Runtime: the FP16 graph, close to the FP32 one.
        np.testing.assert_allclose(out, _run(sources / ONNX, x), atol=5e-3)


def test_plan_from_another_tensorrt_is_refused_with_what_built_it(monkeypatch, sources):
    install(monkeypatch, V10)
    engine, _ = build(sources, sources / FP16_ONNX, "fp16", version=V10)
    install(monkeypatch, "10.4.0")
    from edgecv.runtime import load

    with pytest.raises(ArtifactError, match=r"built for TensorRT 10\.3\.0 \(this machine has 10\.4\.0\)"):
        load(engine)


def test_plan_from_another_gpu_is_refused(monkeypatch, sources):
    install(monkeypatch, V10, gpu={"name": "Orin", "major": 8, "minor": 7})
    engine, _ = build(sources, sources / FP16_ONNX, "fp16", version=V10)
    install(monkeypatch, V10, gpu={"name": "NVIDIA H200", "major": 9, "minor": 0})
    from edgecv.runtime import load

    with pytest.raises(ArtifactError, match=r"Orin of compute capability 8\.7 \(this machine has NVIDIA H200, 9\.0\)"):
        load(engine)


def test_plan_without_sidecar_that_tensorrt_refuses(monkeypatch, sources):
    install(monkeypatch, V10)
    engine = sources / "foreign.engine"
    engine.write_bytes(b"not a plan")
    from edgecv.runtime import load

    with pytest.raises(ArtifactError, match="could not deserialize foreign.engine"):
        load(engine)


# --- platform facts ------------------------------------------------------------------------------


def test_jetson_release_and_versions(tmp_path):
    from edgecv.tensorrt.installation import jetson_release, parse_version, plan_mismatch, same_release

    release = tmp_path / "nv_tegra_release"
    release.write_text(
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n"
    )
    assert jetson_release(release) == {
        "l4t": "36.4.3",
        "jetpack": "6.x",
        "nv_tegra_release": release.read_text().strip(),
    }
    assert jetson_release(tmp_path / "absent") is None
    assert parse_version("v8601") == (8, 6, 1) and parse_version("v100300") == (10, 3, 0)
    assert parse_version("10.3.0.26") == (10, 3, 0, 26)
    assert same_release("10.3.0.26", "10.3.0") and not same_release("10.3.0", "10.4.0")
    assert (
        plan_mismatch({"tensorrt": "10.3.0.26", "compute_capability": "8.7"}, "10.3.0", {"compute_capability": "8.7"})
        is None
    )
    with pytest.raises(InvalidOptionError):
        parse_version("ten")

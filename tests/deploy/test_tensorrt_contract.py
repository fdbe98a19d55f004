"""The part of TensorRT's Python API edgecv calls (builder, network, ONNX parser, builder config,
optimization profile, timing cache, serialization, runtime), as one contract every implementation
meets: the fake as TensorRT 10.x and as 11.x here, the real TensorRT where it and a GPU are present.

:class:`TensorRTContract` states the expectations; each subclass only says where its ``tensorrt``
comes from. A test the fake passes and the real one fails means the fake has drifted from TensorRT,
and the builder tests that rely on it prove less than they claim.
"""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from edgecv.runfolder import ONNX
from edgecv.tensorrt import build as B
from edgecv.tensorrt.installation import parse_version
from edgecv.tensorrt.operators import unsupported_ops
from tests.tensorrt_fake import install

from .conftest import SHAPE

WORKSPACE = 1 << 28
PROFILE = ((1, *SHAPE[1:]), (2, *SHAPE[1:]), (4, *SHAPE[1:]))
WEAK_TYPING_FLAGS = ("FP16", "INT8", "BF16", "FP8", "INT4", "OBEY_PRECISION_CONSTRAINTS")


def _major(trt) -> int:
    return parse_version(trt.__version__)[0]


def _logger(trt):
    return trt.Logger(trt.Logger.WARNING)


def _network(trt, builder, recipe):
    flags = 0
    for name in recipe.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    return builder.create_network(flags)


def _parsed(trt, logger, path, precision="fp32"):
    """A builder and the network parsed from ``path``, created as edgecv's recipe asks."""
    builder = trt.Builder(logger)
    network = _network(trt, builder, B.engine_recipe(trt.__version__, precision))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(path)), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return builder, network


def _config(trt, builder, *, profile: bool = True):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE)
    if profile:
        p = builder.create_optimization_profile()
        p.set_shape("input", *PROFILE)
        assert config.add_optimization_profile(p) == 0
    return config


@pytest.fixture
def unsupported_model(tmp_path):
    """One node the preflight's table says no TensorRT version imports."""
    assert "Unique" in unsupported_ops("10.3") and "Unique" in unsupported_ops("11.1")
    graph = helper.make_graph(
        [helper.make_node("Unique", ["input"], ["y"], name="uniq")],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    )
    path = tmp_path / "unique.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


class TensorRTContract:
    """What edgecv relies on. Not collected itself: a subclass provides the ``trt`` fixture."""

    @pytest.fixture
    def trt(self, monkeypatch):
        raise NotImplementedError

    def test_a_version_edgecv_builds_with(self, trt):
        assert _major(trt) in (10, 11)

    def test_every_flag_a_recipe_names_exists(self, trt):
        recipes = [B.engine_recipe(trt.__version__, p) for p in B.PRECISIONS]
        recipes += [B.engine_recipe(trt.__version__, p, dla_core=0) for p in ("fp16", "int8")]
        if _major(trt) == 10:
            recipes += [B.engine_recipe(trt.__version__, p, weak_typing=True) for p in B.PRECISIONS]
        for recipe in recipes:
            for name in recipe.network_flags:
                getattr(trt.NetworkDefinitionCreationFlag, name)
            for name in recipe.builder_flags:
                getattr(trt.BuilderFlag, name)

    def test_weak_typing_and_the_calibrator_exist_on_10_only(self, trt):
        config = trt.Builder(_logger(trt)).create_builder_config()
        if _major(trt) == 10:
            assert all(hasattr(trt.BuilderFlag, f) for f in WEAK_TYPING_FLAGS)
            assert hasattr(config, "int8_calibrator")
            return
        for removed in WEAK_TYPING_FLAGS:
            with pytest.raises(AttributeError):
                getattr(trt.BuilderFlag, removed)
        with pytest.raises(AttributeError):
            config.int8_calibrator = None

    def test_arguments_of_the_wrong_type_are_refused(self, trt):
        config = trt.Builder(_logger(trt)).create_builder_config()
        with pytest.raises(TypeError):
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1.5)

    def test_parse_build_serialize_and_deserialize(self, trt, onnx_files):
        logger = _logger(trt)
        builder, network = _parsed(trt, logger, onnx_files["fp32"])
        assert network.num_inputs == 1 and network.get_input(0).name == "input"
        assert network.num_outputs == 1 and network.get_output(0).name == "logits"
        assert isinstance(builder.num_DLA_cores, int)
        config = _config(trt, builder)
        cache = config.create_timing_cache(b"")
        assert config.set_timing_cache(cache, False)
        plan = builder.build_serialized_network(network, config)
        assert plan is not None
        blob = bytes(plan)
        assert blob

        engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
        assert engine is not None and engine.num_io_tensors == 2
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        assert set(names) == {"input", "logits"}
        assert engine.get_tensor_mode("input") == trt.TensorIOMode.INPUT
        assert engine.get_tensor_mode("logits") == trt.TensorIOMode.OUTPUT
        assert engine.get_tensor_dtype("input") == trt.DataType.FLOAT
        assert tuple(engine.get_tensor_shape("input"))[1:] == SHAPE[1:]
        assert [tuple(s) for s in engine.get_tensor_profile_shape("input", 0)] == list(PROFILE)
        context = engine.create_execution_context()
        assert context.set_input_shape("input", (3, *SHAPE[1:]))
        assert tuple(context.get_tensor_shape("logits"))[0] == 3

    def test_a_timing_cache_survives_its_bytes(self, trt, onnx_files):
        logger = _logger(trt)
        builder, network = _parsed(trt, logger, onnx_files["fp32"])
        config = _config(trt, builder)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
        assert builder.build_serialized_network(network, config) is not None
        blob = bytes(cache.serialize())
        again = builder.create_builder_config()
        assert again.set_timing_cache(again.create_timing_cache(blob), False)

    def test_a_dynamic_input_without_a_profile_does_not_build(self, trt, onnx_files):
        logger = _logger(trt)
        builder, network = _parsed(trt, logger, onnx_files["fp32"])
        assert builder.build_serialized_network(network, _config(trt, builder, profile=False)) is None

    def test_precision_flags_on_a_strongly_typed_network_do_not_build(self, trt, onnx_files):
        if _major(trt) >= 11:
            pytest.skip("TensorRT 11 has no precision flags to set")
        logger = _logger(trt)
        builder, network = _parsed(trt, logger, onnx_files["fp32"])
        config = _config(trt, builder)
        config.set_flag(trt.BuilderFlag.FP16)
        assert builder.build_serialized_network(network, config) is None

    def test_the_parser_refuses_what_the_preflight_calls_unsupported(self, trt, unsupported_model):
        logger = _logger(trt)
        builder = trt.Builder(logger)
        network = _network(trt, builder, B.engine_recipe(trt.__version__, "fp32"))
        parser = trt.OnnxParser(network, logger)
        assert not parser.parse_from_file(str(unsupported_model))
        assert parser.num_errors >= 1 and "uniq" in str(parser.get_error(0))

    def test_a_foreign_plan_is_refused(self, trt):
        assert trt.Runtime(_logger(trt)).deserialize_cuda_engine(b"not a plan") is None

    def test_edgecv_builds_an_engine_through_it(self, trt, onnx_files, tmp_path):
        source = tmp_path / ONNX
        source.write_bytes(onnx_files["fp32"].read_bytes())
        engine = tmp_path / "model.fp32.engine"
        info = B.build_engine(
            source,
            engine,
            precision="fp32",
            input_name="input",
            input_shape=SHAPE,
            dynamic_batch=True,
            max_batch=4,
            opt_batch=2,
            workspace_bytes=WORKSPACE,
            timing_cache=tmp_path / B.TIMING_CACHE,
        )
        assert engine.stat().st_size > 0 and info["tensorrt"] == trt.__version__
        assert (tmp_path / B.TIMING_CACHE).is_file()


class TestFake10(TensorRTContract):
    @pytest.fixture
    def trt(self, monkeypatch):
        return install(monkeypatch, "10.3.0")


class TestFake11(TensorRTContract):
    @pytest.fixture
    def trt(self, monkeypatch):
        return install(monkeypatch, "11.1.0")


@pytest.mark.tensorrt
class TestRealTensorRT(TensorRTContract):
    @pytest.fixture
    def trt(self):
        trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed here")
        if hasattr(trt, "_fake"):
            pytest.skip("the tensorrt module here is the test suite's fake")
        from edgecv.tensorrt.installation import cuda_gpu

        if cuda_gpu() is None:
            pytest.skip("no CUDA GPU found through cuda-python")
        return trt


@pytest.mark.parametrize("version", ["10.3.0", "10.16.1", "11.1.0"])
def test_the_fake_parser_refuses_the_preflight_list(monkeypatch, version):
    """The fake's parser reads the preflight's operator table: no second list to keep in step."""
    trt = install(monkeypatch, version)
    assert trt.OnnxParser.UNSUPPORTED == unsupported_ops(version)
    assert ("STFT" in trt.OnnxParser.UNSUPPORTED) == (version == "10.3.0")

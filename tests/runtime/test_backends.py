"""Every runtime backend meets the same contract (one abstract test class, one small subclass per
backend, as in NNCF's cross-backend template tests), then what is particular to each."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import torch

from edgecv.errors import ArtifactError, BackendUnavailableError, InputMismatchError, InvalidOptionError
from edgecv.models import InputSpec
from edgecv.runtime import Runtime, available_backends, load, resolve_backend
from edgecv.sysinfo import openvino_default_precision
from tests.runtime.fake_run import RESOLUTION, random_batch, tiny_model


def reference_model(run) -> torch.nn.Module:
    model = tiny_model()
    model.load_state_dict(torch.load(run / "weights.pth", weights_only=True))
    return model.eval()


def torch_logits(run, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return reference_model(run)(torch.from_numpy(x)).numpy()


class RuntimeContract:
    """What every backend guarantees. A subclass names its backend and how to load the FP32 artifact."""

    backend: str
    static_batch = True  # the artifact fixes batch 1

    def load_fp32(self, run, **kw) -> Runtime:
        raise NotImplementedError

    @pytest.fixture
    def open_fp32(self, static_run):
        return lambda **kw: self.load_fp32(static_run, **kw)

    @pytest.fixture
    def runtime(self, open_fp32):
        with open_fp32() as rt:
            yield rt

    def test_matches_pytorch(self, runtime, static_run):
        for seed in range(3):
            x = random_batch(1, seed=seed)
            np.testing.assert_allclose(runtime(x)["logits"], torch_logits(static_run, x), atol=1e-4, rtol=1e-3)

    def test_describes_its_io(self, runtime):
        assert runtime.backend == self.backend
        (inp,) = runtime.inputs
        assert inp.name == "input" and inp.dtype == np.float32
        assert tuple(inp.shape[1:]) == (3, RESOLUTION, RESOLUTION)
        assert [o.name for o in runtime.outputs] == ["logits"]
        assert runtime.load_s > 0 and runtime.size_bytes > 0

    def test_dict_and_array_feeds_agree(self, runtime):
        x = random_batch(1, seed=5)
        np.testing.assert_array_equal(runtime.infer({"input": x})["logits"], runtime.infer(x)["logits"])

    def test_wrong_dtype_names_both(self, runtime):
        with pytest.raises(InputMismatchError, match=r"float64.*float32"):
            runtime(random_batch(1).astype(np.float64))

    def test_wrong_shape_names_both(self, runtime):
        x = np.zeros((1, 3, RESOLUTION // 2, RESOLUTION // 2), np.float32)
        with pytest.raises(InputMismatchError, match=rf"\[1, 3, 32, 32\].*{RESOLUTION}, {RESOLUTION}\]"):
            runtime(x)

    def test_wrong_rank(self, runtime):
        with pytest.raises(InputMismatchError, match="rank"):
            runtime(np.zeros((3, RESOLUTION, RESOLUTION), np.float32))

    def test_unknown_input_name(self, runtime):
        with pytest.raises(InputMismatchError, match="missing input; unknown image"):
            runtime({"image": random_batch(1)})

    def test_batch_limits(self, runtime):
        if self.static_batch:
            assert runtime.batch_range == (1, 1)
            with pytest.raises(InputMismatchError, match=r"got \[2, 3, 64, 64\].*dimension 0 is 2, not 1"):
                runtime(random_batch(2))
            with pytest.raises(InputMismatchError, match="takes only batch 1, asked for batch 2"):
                runtime.check_batch(2)
        else:
            assert runtime(random_batch(3))["logits"].shape == (3, 10)

    def test_closed_runtime_refuses_calls(self, open_fp32):
        with open_fp32() as rt:
            pass
        assert rt.closed
        with pytest.raises(RuntimeError, match="closed"):
            rt(random_batch(1))

    def test_reports_what_ran(self, runtime):
        assert runtime.precision == "fp32"


class TestOnnxRuntime(RuntimeContract):
    backend = "onnxruntime"

    def load_fp32(self, run, **kw):
        return load(run / "model.onnx", **kw)

    def test_int8_graph_reports_int8(self, static_run):
        with load(static_run / "model.int8.cpu.onnx") as rt:
            assert rt.precision == "int8"
            logits = rt(random_batch(1))["logits"]
        assert logits.shape == (1, 10) and np.isfinite(logits).all()

    def test_precision_is_fixed_by_the_graph(self, static_run):
        with pytest.raises(InvalidOptionError, match="only OpenVINO takes a precision hint"):
            load(static_run / "model.onnx", precision="bf16")
        load(static_run / "model.onnx", precision="f32").close()

    def test_threads_and_device(self, static_run):
        with load(static_run / "model.onnx", threads=1, device="cpu") as rt:
            assert rt.threads == 1 and rt.device == "cpu"
        with pytest.raises(InvalidOptionError, match="device"):
            load(static_run / "model.onnx", device="tpu")

    @pytest.mark.skipif(
        "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
        reason="this onnxruntime build has CUDA",
    )
    def test_cuda_without_gpu_build_names_the_package(self, static_run):
        with pytest.raises(BackendUnavailableError, match="pip install onnxruntime-gpu"):
            load(static_run / "model.onnx", device="cuda")

    def test_corrupt_file(self, tmp_path):
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"not a protobuf")
        with pytest.raises(ArtifactError, match="ONNX Runtime cannot load"):
            load(bad)


class TestOpenVino(RuntimeContract):
    backend = "openvino"

    def load_fp32(self, run, **kw):
        return load(run / "openvino" / "model.xml", precision="f32", **kw)

    def test_default_precision_is_what_openvino_picks(self, static_run):
        with load(static_run / "openvino" / "model.xml") as rt:
            assert rt.precision == openvino_default_precision()

    def test_threads_are_read_back(self, static_run):
        with self.load_fp32(static_run, threads=1) as rt:
            assert rt.threads == 1

    def test_compiled_model_cache(self, static_run, tmp_path):
        with self.load_fp32(static_run, cache_dir=tmp_path / "cache"):
            pass
        assert any((tmp_path / "cache").iterdir())

    def test_reads_onnx_directly(self, static_run):
        with load(static_run / "model.onnx", backend="openvino", precision="f32") as rt:
            x = random_batch(1)
            np.testing.assert_allclose(rt(x)["logits"], torch_logits(static_run, x), atol=1e-4, rtol=1e-3)

    def test_missing_weights_file(self, static_run, tmp_path):
        shutil.copy(static_run / "openvino" / "model.xml", tmp_path / "model.xml")
        with pytest.raises(ArtifactError, match="no weights file model.bin"):
            load(tmp_path / "model.xml")

    def test_absent_device(self, static_run):
        if "NPU" in __import__("openvino").Core().available_devices:
            pytest.skip("this machine has an NPU")
        with pytest.raises(BackendUnavailableError, match="no NPU device"):
            load(static_run / "openvino" / "model.xml", device="NPU")

    def test_rebinding_inputs_between_calls(self, dynamic_run):
        # The runtime keeps the last array bound: alternating arrays, shapes and in-place edits
        # must each give that array's own result.
        a, b = random_batch(3, seed=1), random_batch(1, seed=2)
        with load(dynamic_run / "openvino" / "model.xml", precision="f32") as rt:
            first = rt(a)["logits"]
            np.testing.assert_allclose(rt(b)["logits"], torch_logits(dynamic_run, b), atol=1e-4, rtol=1e-3)
            np.testing.assert_array_equal(rt(a)["logits"], first)
            a[0] = 0.0
            np.testing.assert_allclose(rt(a)["logits"], torch_logits(dynamic_run, a), atol=1e-4, rtol=1e-3)

    def test_int8_is_not_a_hint(self, static_run):
        with pytest.raises(InvalidOptionError, match="not a compute precision"):
            load(static_run / "openvino" / "model.xml", precision="int8")


class TestTorch(RuntimeContract):
    backend = "torch"
    static_batch = False  # eager PyTorch takes any batch

    def load_fp32(self, run, **kw):
        return load(run, backend="torch", **kw)

    def test_module_needs_an_input_spec(self):
        plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
        with pytest.raises(InvalidOptionError, match="input_spec"):
            load(plain)
        spec = InputSpec(height=8, width=8, output_names=("features",))
        with load(plain, input_spec=spec, threads=1) as rt:
            out = rt(np.ones((2, 3, 8, 8), np.float32))["features"]
        assert out.shape == (2, 4 * 6 * 6)

    def test_zoo_name_with_options(self):
        with load("mobilenet_v2", width_mult=0.35, resolution=32, num_classes=3) as rt:
            assert rt.inputs[0].shape == (None, 3, 32, 32)
            assert rt(np.zeros((1, 3, 32, 32), np.float32))["logits"].shape == (1, 3)
        with pytest.raises(InvalidOptionError, match="has no option 'depth'"):
            load("mobilenetv2", depth=3)

    def test_weights_file_needs_its_model(self, static_run):
        with pytest.raises(InvalidOptionError, match="model='mobilenetv2'"):
            load(static_run / "weights.pth")
        with load(
            static_run / "weights.pth", model="mobilenetv2", width_mult=0.35, resolution=64, num_classes=10
        ) as rt:
            x = random_batch(1)
            np.testing.assert_allclose(rt(x)["logits"], torch_logits(static_run, x), atol=1e-6)

    def test_torchscript_archive(self, static_run, tmp_path):
        scripted = torch.jit.trace(reference_model(static_run), torch.from_numpy(random_batch(1)))
        scripted.save(str(tmp_path / "model.pt"))
        spec = InputSpec(height=RESOLUTION, width=RESOLUTION)
        with load(tmp_path / "model.pt", input_spec=spec) as rt:
            x = random_batch(1)
            np.testing.assert_allclose(rt(x)["logits"], torch_logits(static_run, x), atol=1e-5)


def _tensorrt_ready() -> bool:
    # Asked through CUDA, not nvidia-smi, which Jetson boards lack.
    from edgecv.tensorrt.installation import cuda_gpu

    return importlib.util.find_spec("tensorrt") is not None and cuda_gpu() is not None


@pytest.mark.tensorrt
@pytest.mark.skipif(not _tensorrt_ready(), reason="needs TensorRT and an NVIDIA GPU")
class TestTensorRT(RuntimeContract):
    backend = "tensorrt"

    @pytest.fixture(scope="class")
    def engine(self, static_run, tmp_path_factory):
        from edgecv.tensorrt.build import build_engine, write_sidecar

        path = tmp_path_factory.mktemp("trt") / "model.fp32.engine"
        info = build_engine(
            static_run / "model.onnx",
            path,
            precision="fp32",
            input_name="input",
            input_shape=(1, 3, RESOLUTION, RESOLUTION),
            dynamic_batch=False,
        )
        write_sidecar(path, info)
        return path

    @pytest.fixture
    def open_fp32(self, engine):
        return lambda **kw: load(engine, **kw)

    def test_threads_do_not_apply(self, engine):
        with pytest.raises(InvalidOptionError, match="threads"):
            load(engine, threads=2)


class TestResolution:
    """Which backend a source goes to, and the errors for sources that go nowhere."""

    def test_suffixes(self, static_run):
        assert resolve_backend(static_run / "model.onnx") == "onnxruntime"
        assert resolve_backend(static_run / "openvino" / "model.xml") == "openvino"
        assert resolve_backend("mobilenetv2") == "torch"
        assert resolve_backend(tiny_model()) == "torch"
        assert resolve_backend(static_run / "model.onnx", "ov") == "openvino"

    def test_missing_path(self, tmp_path):
        with pytest.raises(ArtifactError, match="does not exist"):
            load(tmp_path / "absent.onnx")

    def test_unknown_kind_lists_known_ones(self, tmp_path):
        (tmp_path / "model.tflite").write_bytes(b"x")
        with pytest.raises(ArtifactError, match=r"unknown artifact kind '\.tflite'.*\.onnx → onnxruntime"):
            load(tmp_path / "model.tflite")

    def test_run_folder_needs_a_choice(self, static_run):
        with pytest.raises(ArtifactError, match="run folder with several artifacts"):
            load(static_run)

    def test_unknown_backend(self, static_run):
        with pytest.raises(InvalidOptionError, match="unknown backend 'tflite'"):
            load(static_run / "model.onnx", backend="tflite")

    def test_model_name_typo_suggests(self):
        with pytest.raises(ArtifactError, match="did you mean .*mobilenetv2"):
            load("mobilenetv22")

    def test_nn_module_only_runs_in_torch(self):
        with pytest.raises(InvalidOptionError, match="torch backend"):
            load(tiny_model(), backend="onnxruntime")

    @pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
    def test_tensorrt_missing_names_the_install(self, tmp_path):
        engine = tmp_path / "model.engine"
        engine.write_bytes(b"\0" * 16)
        with pytest.raises(BackendUnavailableError, match=r"pip install edgecv\[tensorrt\]"):
            load(engine)
        assert available_backends()["tensorrt"] is False

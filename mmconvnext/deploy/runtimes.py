"""The runtimes that run an exported file on the CPU, behind one call: ``session(image)`` ->
``{output name: numpy array}`` for an (N, 3, H, W) float32 numpy image.

- ``onnxruntime``: ONNX Runtime's CPU execution provider.
- ``openvino``: OpenVINO's CPU plugin, with ``INFERENCE_PRECISION_HINT`` f32 unless
  ``precision='bf16'``. OpenVINO's own default on CPUs with bfloat16 units is bf16, which moved
  the demo UperNet's logits by 0.04 and boxes by pixels, and halved UperNet-T's latency on the
  2-core CPU (docs/deploy.md); f32 computes what the file says (float16 files included: their
  weights and activations are float16 values, computed in float32).

A runtime whose package is missing raises :class:`.errors.DeployError` naming the package to
install (``pip install -r requirements/deploy.txt``).
"""
from importlib import import_module

from .errors import DeployError
from .packages import require_packages

#: runtime name -> the PyPI package that provides it.
RUNTIME_PACKAGES = dict(onnxruntime='onnxruntime', openvino='openvino')
#: runtime name -> the compute precisions it offers, its default first.
RUNTIME_PRECISIONS = dict(onnxruntime=('f32', ), openvino=('f32', 'bf16'))


def check_runtime(runtime, precision='f32'):
    """``DeployError`` unless ``runtime`` is known, its package installed and ``precision``
    one of :data:`RUNTIME_PRECISIONS` ``[runtime]``."""
    if runtime not in RUNTIME_PACKAGES:
        raise DeployError(f'runtime {runtime!r}: one of {", ".join(RUNTIME_PACKAGES)}')
    require_packages(RUNTIME_PACKAGES[runtime], purpose=f'runtime {runtime}')
    if precision not in RUNTIME_PRECISIONS[runtime]:
        raise DeployError(f'runtime {runtime} computes in {", ".join(RUNTIME_PRECISIONS[runtime])}'
                          f', not {precision}')


def _import_runtime(runtime):
    try:
        return import_module(RUNTIME_PACKAGES[runtime])
    except ImportError as error:
        raise DeployError(f'runtime {runtime}: the Python package {RUNTIME_PACKAGES[runtime]} '
                          f'does not import ({error}); pip install -r requirements/deploy.txt'
                          ) from error


class OnnxRuntimeSession:
    """ONNX Runtime on the CPU; ``threads``: intra-op threads (default: ONNX Runtime's)."""

    def __init__(self, path, threads=None, precision='f32'):
        ort = _import_runtime('onnxruntime')
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, image):
        outputs = self.session.run(self.output_names, {self.input_name: image})
        return dict(zip(self.output_names, outputs))


class OpenVinoSession:
    """OpenVINO's CPU plugin computing in ``precision`` ('f32' or 'bf16'); ``threads``:
    inference threads (default: OpenVINO's)."""

    def __init__(self, path, threads=None, precision='f32'):
        ov = _import_runtime('openvino')
        config = {'INFERENCE_PRECISION_HINT': precision}
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        self.model = ov.Core().compile_model(path, 'CPU', config)
        self.output_names = [output.get_any_name() for output in self.model.outputs]

    def __call__(self, image):
        outputs = self.model(image)
        return {name: outputs[port] for name, port in zip(self.output_names, self.model.outputs)}


SESSIONS = dict(onnxruntime=OnnxRuntimeSession, openvino=OpenVinoSession)


def open_session(path, runtime, threads=None, precision='f32'):
    """A session of ``runtime`` (a key of :data:`RUNTIME_PACKAGES`) on the ONNX file ``path``,
    computing in ``precision`` (checked by :func:`check_runtime`)."""
    check_runtime(runtime, precision)
    try:
        return SESSIONS[runtime](path, threads, precision)
    except DeployError:
        raise
    except Exception as error:  # noqa: B902 (each runtime has its own exception types)
        raise DeployError(f'{runtime} cannot load {path}: {error}') from error

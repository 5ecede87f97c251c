"""Deployment: a trained detector or segmentor as one ONNX file, run by ONNX Runtime and OpenVINO.

Needs the packages of ``requirements/deploy.txt`` (onnx, onnxscript, onnxruntime, openvino);
``import mmconvnext`` does not import this package. Layers, bottom up: :mod:`.errors`,
:mod:`.packages`; :mod:`.graph_ops`; the graphs :mod:`.segmentor_graph` and
:mod:`.detector_graph`; :mod:`.graph_families` (one entry per model family); :mod:`.onnx_file`,
:mod:`.runtimes`, :mod:`.parity`; :mod:`.exporter` (``tools/export.py``) and
:mod:`.deployed_model` (``tools/test.py --backend``). See docs/deploy.md.
"""
from .deployed_model import DeployedModel, deployed_model_config
from .errors import DeployError
from .exporter import ExportReport, export_model
from .runtimes import RUNTIME_PACKAGES, open_session

__all__ = ['DeployError', 'DeployedModel', 'ExportReport', 'RUNTIME_PACKAGES',
           'deployed_model_config', 'export_model', 'open_session']

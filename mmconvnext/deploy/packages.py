"""The optional packages deployment needs (``requirements/deploy.txt``), checked before use."""
from importlib.util import find_spec

from .errors import DeployError

#: What writing a file needs: the ONNX library and the dynamo exporter's translator.
EXPORT_PACKAGES = ('onnx', 'onnxscript')


def require_packages(*packages, purpose='deployment'):
    """``DeployError`` naming the missing ones of the importable ``packages``, and how to
    install them."""
    missing = [name for name in packages if find_spec(name) is None]
    if missing:
        raise DeployError(f'{purpose} needs the Python package(s) {", ".join(missing)}, not '
                          'installed: pip install -r requirements/deploy.txt')

from .inference_model import TASK_SCOPES, config_scope, init_inference_model

__all__ = ['TASK_SCOPES', 'config_scope', 'init_inference_model']

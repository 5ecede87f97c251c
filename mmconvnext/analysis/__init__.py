from .complexity import default_input_size, measure_complexity

__all__ = ['default_input_size', 'measure_complexity']

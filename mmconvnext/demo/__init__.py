"""The embedded demo: drawn shape scenes written in the COCO and ADE20K layouts."""
from .demo_dataset import ADE_CLASSES, write_demo_data
from .shape_scenes import SHAPE_CLASSES, draw_scene

__all__ = ['ADE_CLASSES', 'SHAPE_CLASSES', 'draw_scene', 'write_demo_data']

from .backbones import ConvNeXt

__all__ = ['ConvNeXt']

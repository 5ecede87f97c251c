"""The ConvNeXt arch table: blocks and channels per stage of every named size."""

#: arch name -> (blocks per stage, channels per stage); paper Table 9, V2 paper for atto..nano.
ARCH_SETTINGS = {
    'atto': ((2, 2, 6, 2), (40, 80, 160, 320)),
    'femto': ((2, 2, 6, 2), (48, 96, 192, 384)),
    'pico': ((2, 2, 6, 2), (64, 128, 256, 512)),
    'nano': ((2, 2, 8, 2), (80, 160, 320, 640)),
    'tiny': ((3, 3, 9, 3), (96, 192, 384, 768)),
    'small': ((3, 3, 27, 3), (96, 192, 384, 768)),
    'base': ((3, 3, 27, 3), (128, 256, 512, 1024)),
    'large': ((3, 3, 27, 3), (192, 384, 768, 1536)),
    'xlarge': ((3, 3, 27, 3), (256, 512, 1024, 2048)),
    'huge': ((3, 3, 27, 3), (352, 704, 1408, 2816)),
}

#: archs of the ConvNeXt V2 family only (no ConvNeXt V1 of that size was published)
V2_ONLY_ARCHS = ('huge', )


def parse_arch(arch):
    """``arch`` (name or dict) -> (depths, channels), each a tuple of 4 ints."""
    if isinstance(arch, str):
        if arch not in ARCH_SETTINGS:
            raise ValueError(f'Unknown ConvNeXt arch {arch!r}; valid: {", ".join(ARCH_SETTINGS)} '
                             "or dict(depths=[...], channels=[...])")
        return ARCH_SETTINGS[arch]
    if isinstance(arch, dict) and set(arch) == {'depths', 'channels'}:
        depths, channels = tuple(arch['depths']), tuple(arch['channels'])
        if len(depths) == len(channels) == 4 and all(
                isinstance(v, int) and v > 0 for v in depths + channels):
            return depths, channels
    raise ValueError(f'Invalid ConvNeXt arch {arch!r}; a dict needs exactly the keys depths and '
                     'channels, each 4 positive ints')

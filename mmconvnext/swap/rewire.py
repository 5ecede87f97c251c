"""Rewiring the modules that read the backbone to ConvNeXt's output channels."""
from .errors import BackboneSwapError


def backbone_consumers(model_cfg, old_channels):
    """(consumers, others): [(path, config)] of the modules reading the backbone's outputs, and
    the paths of the ``*head`` modules left as they are.

    The consumer is the first neck; with no neck, every ``*head`` of the model with an
    ``in_channels`` key. A head without one (e.g. MaskFormer's fusion head) is left as it is,
    unless it has a ``shared_head`` (a C4 RoI head running the backbone's last stage) or a
    ``*channels`` key in it holds one of the base backbone's ``old_channels``: then it may read
    the backbone and the swap is refused. ``path`` is a tuple of keys / list indices below
    ``model``.
    """
    neck = model_cfg.get('neck')
    if neck:
        return [(('neck', 0), neck[0])] if isinstance(neck, list) else [(('neck', ), neck)], []
    heads = []
    for key, value in model_cfg.items():
        if key.endswith('head') and isinstance(value, list):
            heads += [((key, index), item) for index, item in enumerate(value)]
        elif key.endswith('head') and isinstance(value, dict):
            heads.append(((key, ), value))
    consumers = [(path, head) for path, head in heads if 'in_channels' in head]
    if not consumers:
        raise BackboneSwapError('model has no neck and no *head with in_channels: cannot tell '
                                'which modules read the backbone outputs')
    others = [(path, head) for path, head in heads if 'in_channels' not in head]
    for path, head in others:
        if head.get('shared_head'):
            raise BackboneSwapError(
                f'{format_path(path + ("shared_head", ))} ({head["shared_head"].get("type")}) runs '
                'a stage of the base backbone on the RoI features (a C4 detector): ConvNeXt has no '
                'such stage to share; take an FPN base config')
        for nested_path, node in nested_dicts(head, path):
            for key, value in node.items():
                widths = value if isinstance(value, (list, tuple)) else [value]
                if key.endswith('channels') and any(width in old_channels for width in widths):
                    raise BackboneSwapError(
                        f'{format_path(nested_path + (key, ))}={value!r} holds a width of the '
                        f'base backbone\'s outputs {old_channels}: {format_path(path)} may read '
                        'the backbone through a key this tool cannot map')
    return consumers, [path for path, _ in others]


def rewire_consumer(path, consumer, old_channels, new_channels):
    """Rewrite ``consumer``'s ``in_channels`` (and ``in_index``-selected levels) from the base
    backbone's ``old_channels`` to ``new_channels`` in place, every nested ``in_channels`` equal
    to the old value, and every other ``*_in_channels`` key holding one base width (e.g.
    DeepLabV3+'s ``c1_in_channels``, read from the first output) to the width of that level.
    Returns [(path, old, new)] of the rewritten keys."""
    where = format_path(path)
    if 'in_channels' not in consumer:
        raise BackboneSwapError(f'{where} ({consumer.get("type")}) reads the backbone but has no '
                                'in_channels: cannot map its input channels')
    old, index = consumer['in_channels'], consumer.get('in_index')
    if isinstance(old, (list, tuple)) and isinstance(index, (list, tuple)):
        expected, new = ([channels[i] for i in index] for channels in (old_channels, new_channels))
    elif isinstance(old, (list, tuple)) and index is None:
        expected, new = list(old_channels), list(new_channels)
    elif isinstance(old, int) and not isinstance(index, (list, tuple)):
        level = -1 if index is None else index  # mmseg heads and single-input necks: last level
        expected, new = old_channels[level], new_channels[level]
    else:
        raise BackboneSwapError(f'{where}: in_channels={old!r} with in_index={index!r} is a '
                                'combination this tool cannot map')
    if (list(old) if isinstance(old, (list, tuple)) else old) != expected:
        raise BackboneSwapError(
            f'{where}.in_channels={old!r} does not match the base backbone\'s outputs '
            f'{list(old_channels)}{"" if index is None else f" at in_index={index!r}"}: cannot '
            'tell how it reads the backbone')
    for key, value in consumer.items():
        if (key.endswith('out_channels') and isinstance(value, (list, tuple))
                and isinstance(old, (list, tuple)) and list(value[:len(old)]) == list(old)):
            raise BackboneSwapError(
                f'{where}.{key}={value!r} starts with its in_channels: it passes the backbone\'s '
                'outputs on as its own (as SSD\'s neck does), to modules this tool does not '
                'rewire')
    changes = [(path + ('in_channels', ), old, new)]
    consumer['in_channels'] = new
    for nested_path, node in nested_dicts(consumer, path):
        if node is not consumer and node.get('in_channels') == old:
            node['in_channels'] = new
            changes.append((nested_path + ('in_channels', ), old, new))
        for key, value in node.items():
            if key.endswith('_in_channels') and value in old_channels:
                levels = [level for level, width in enumerate(old_channels) if width == value]
                if len(levels) > 1:
                    raise BackboneSwapError(
                        f'{format_path(nested_path + (key, ))}={value!r} is the width of several '
                        f'base backbone outputs {list(old_channels)}: cannot tell which it reads')
                node[key] = new_channels[levels[0]]
                changes.append((nested_path + (key, ), value, node[key]))
    return changes


def nested_dicts(value, path):
    """Yield (path, dict) for ``value`` and every dict nested in it (through dicts and lists)."""
    if isinstance(value, dict):
        yield path, value
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        yield from nested_dicts(item, path + (key, ))


def sparse_overrides(model_cfg, paths):
    """The smallest ``model`` overrides setting the values at ``paths`` of ``model_cfg``: nested
    dicts down to each key; a list on the way is given whole (mmengine replaces lists)."""
    overrides = {}
    for path in paths:
        node, target = model_cfg, overrides
        for key in path[:-1]:
            node = node[key]
            if isinstance(node, list):
                target[key] = node
                break
            target = target.setdefault(key, {})
        else:
            target[path[-1]] = node[path[-1]]
    return overrides


def format_path(path):
    """('neck', 0, 'in_channels') -> 'model.neck[0].in_channels'."""
    return 'model' + ''.join(f'[{key}]' if isinstance(key, int) else f'.{key}' for key in path)

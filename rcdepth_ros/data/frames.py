"""
Frame selections written on the command line: ``0-349``, ``0-10,20``, ``7``.

A selection is a list of non-negative integers in the order written, duplicates removed. What a number means is
the reader's business (Astyx: the frame index of ``dataset.json``; nuScenes, ZJU, synthetic: the position in the
reader's ordered frame list), see ``SampleReader.select``.
"""

from rcdepth_ros.errors import DatasetError


def parse_frame_spec(spec):
    """
    Return the frame numbers of ``spec`` (a string such as ``'0-10,20'``, an int, or an iterable of ints).

    Ranges are inclusive at both ends. An empty, negative, reversed or non-numeric item raises DatasetError
    naming the item.
    """
    if isinstance(spec, bool):
        raise DatasetError(f'frame selection {spec!r}: expected numbers such as 0-349 or 0-10,20')
    if isinstance(spec, int):
        items = [str(spec)]
    elif isinstance(spec, str):
        items = spec.split(',')
    else:
        try:
            values = list(spec)
        except TypeError as exc:
            raise DatasetError(f'frame selection {spec!r}: expected numbers such as 0-349 or 0-10,20') from exc
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in values):
            raise DatasetError(f'frame selection {spec!r}: expected non-negative integers')
        items = [str(n) for n in values]
    numbers = []
    seen = set()
    for raw in items:
        for n in _parse_item(raw.strip(), spec):
            if n not in seen:
                seen.add(n)
                numbers.append(n)
    if not numbers:
        raise DatasetError(f'frame selection {spec!r} selects no frame')
    return numbers


def _parse_item(item, spec):
    """Return the numbers of one comma-separated item (``'5'`` or ``'3-7'``)."""
    if not item:
        raise DatasetError(f'frame selection {spec!r}: empty item (two commas, or a comma at an end)')
    first, sep, last = item.partition('-')
    try:
        start = int(first.strip())
        stop = int(last.strip()) if sep else start
    except ValueError as exc:
        raise DatasetError(f'frame selection {spec!r}: {item!r} is not a number or a range A-B of '
                           f'non-negative integers') from exc
    if start < 0 or stop < 0:
        raise DatasetError(f'frame selection {spec!r}: {item!r} is negative')
    if stop < start:
        raise DatasetError(f'frame selection {spec!r}: range {item!r} ends before it starts')
    return range(start, stop + 1)


def format_frame_spec(numbers):
    """Return the shortest ``A-B,C`` string for a list of frame numbers (inverse of ``parse_frame_spec``)."""
    numbers = list(numbers)
    parts = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f'{numbers[i]}-{numbers[j]}')
        i = j + 1
    return ','.join(parts)

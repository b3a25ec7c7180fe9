"""The pure maths of `LengthBatcher`: which sequences an epoch uses, in
which order, cut into which batches, padded to which length.

Everything here is a function of NumPy arrays and a seed; nothing knows
Keras. RETURNN's sequence orderings and frame-based batch size are the
reference (`Dataset.get_seq_order_for_epoch`, `batch_size` in frames,
`max_seqs`): described in docs/length_batching.md.
"""

import math
import re

import numpy as np

from keras_trainplus import _validation as v

ORDERINGS = ("random", "sorted", "sorted_reverse", "laplace:N", "laplace:.N")


def parse_ordering(ordering):
    """``(kind, bins, per_bin)`` from an `ordering` string: kind is
    "random", "sorted", "sorted_reverse" or "laplace"; for laplace either
    `bins` (``"laplace:N"``) or `per_bin` (``"laplace:.N"``) is set."""
    if not isinstance(ordering, str):
        v.fail_type("ordering", ordering, _expected())
    if ordering in ("random", "sorted", "sorted_reverse"):
        return ordering, None, None
    kind, colon, count = ordering.partition(":")
    if kind == "laplace" and colon:
        per_bin = count.startswith(".")
        digits = count[1:] if per_bin else count
        if re.fullmatch("[0-9]+", digits) and int(digits) >= 1:
            if per_bin:
                return "laplace", None, int(digits)
            return "laplace", int(digits), None
    v.fail("ordering", ordering, _expected())


def _expected():
    return (
        'one of "random", "sorted", "sorted_reverse", "laplace:N" (N bins) '
        'or "laplace:.N" (bins of about N sequences), N an int >= 1'
    )


def order(indices, lengths, ordering, rng):
    """`indices` (the sequences of an epoch) in the order of `ordering`.

    `rng` (a NumPy Generator, or None for no shuffling) permutes them
    first; "sorted" then sorts stably by length (ties stay in random
    order), "laplace" cuts the permutation into bins and sorts each bin,
    the first ascending and then alternating (RETURNN's "laplace")."""
    kind, bins, per_bin = parse_ordering(ordering)
    indices = np.asarray(indices, dtype=np.int64)
    if rng is not None:
        indices = rng.permutation(indices)
    if kind == "random" or indices.size == 0:
        return indices
    if kind.startswith("sorted"):
        ranked = indices[np.argsort(lengths[indices], kind="stable")]
        return ranked[::-1] if kind == "sorted_reverse" else ranked
    if bins is None:
        bins = max(indices.size // per_bin, 1)
    bins = min(bins, indices.size)
    edges = [i * indices.size // bins for i in range(bins + 1)]
    out = []
    for b in range(bins):
        part = indices[edges[b] : edges[b + 1]]
        part = part[np.argsort(lengths[part], kind="stable")]
        out.append(part[::-1] if b % 2 else part)
    return np.concatenate(out)


def round_up(length, multiple):
    """`length` rounded up to a multiple of `multiple` (None: unchanged)."""
    if not multiple:
        return int(length)
    return int(math.ceil(length / multiple) * multiple)


def batches(ordered, lengths, batch_size, max_tokens, multiple, divisor=1):
    """Cuts `ordered` into consecutive batches of at most `batch_size`
    sequences (None: no count limit) and, with `max_tokens`, at most that
    many padded frames: ``len(batch) * round_up(longest, multiple)``. A
    sequence longer than `max_tokens` on its own makes a batch of one.

    With `divisor` > 1 every batch size is a multiple of it (fairseq's
    `required_batch_size_multiple`): a batch the token cap closes keeps
    the largest multiple and passes the rest on; the token cap yields
    when even `divisor` sequences exceed it; the last ``< divisor``
    sequences of the order are left out."""
    out, start, longest = [], 0, 0
    for pos, index in enumerate(ordered):
        count = pos - start
        grown = max(longest, int(lengths[index]))
        full = batch_size is not None and count >= batch_size
        too_many = (
            max_tokens is not None
            and (count + 1) * round_up(grown, multiple) > max_tokens
        )
        keep = count - count % divisor
        if keep and (full or too_many):
            out.append(ordered[start : start + keep])
            start += keep
            grown = int(lengths[ordered[start : pos + 1]].max())
        longest = grown
    keep = len(ordered) - start
    keep -= keep % divisor
    if keep:
        out.append(ordered[start : start + keep])
    return out


def padding_stats(batch_list, lengths, multiple):
    """``{"frames", "padded_frames", "padding_share", "shapes"}`` of a list
    of batches: real frames, frames after padding, their padding share, and
    the distinct (batch size, padded length) pairs."""
    frames = padded = 0
    shapes = set()
    for batch in batch_list:
        length = round_up(lengths[batch].max(), multiple)
        frames += int(lengths[batch].sum())
        padded += len(batch) * length
        shapes.add((len(batch), length))
    share = (padded - frames) / padded if padded else 0.0
    return {
        "frames": frames,
        "padded_frames": padded,
        "padding_share": float(share),
        "shapes": len(shapes),
    }

"""Counter-based random numbers: a 32-bit integer hash of an element
counter, keyed by two int32 keys.

Every backend computes the same numbers for the same keys (integer
arithmetic only, wrapping multiplication), inside XLA, with no random op
and no generator state. Used for per-example draws of the augmentation
layers (`layers/_random.py`) and for the stateless seeds of gradient noise
(keyed by the seed and the update number, so every replica and every
worker adds the same noise).
"""

from keras import ops

_M1 = 0x7FEB352D
_M2 = 0x846CA68B - (1 << 32)  # as int32
_GOLDEN = 0x9E3779B9 - (1 << 32)  # as int32
_TINY = 1e-30
_TWO_PI = 6.283185307179586


def lshr(x, k):
    """Logical right shift of int32 `x` by `k` bits."""
    return ops.bitwise_and(ops.right_shift(x, k), (1 << (32 - k)) - 1)


def mix32(x):
    """A 32-bit integer finaliser (xorshift-multiply, "lowbias32" constants
    of C. Wellons' hash prospector): a bijection of int32 with strong
    avalanche. Multiplication wraps."""
    x = ops.bitwise_xor(x, lshr(x, 16))
    x = x * ops.convert_to_tensor(_M1, "int32")
    x = ops.bitwise_xor(x, lshr(x, 15))
    x = x * ops.convert_to_tensor(_M2, "int32")
    return ops.bitwise_xor(x, lshr(x, 16))


def uniform_from_counter(counter, key0, key1):
    """float32 uniforms in [0, 1) (24 random bits each), one per int32
    `counter` element: two finaliser rounds, keyed before each round."""
    h = mix32(ops.bitwise_xor(mix32(counter + key0), key1 * 256 + 1))
    return ops.cast(lshr(h, 8), "float32") * (1.0 / 16777216.0)


def keys(seed, step):
    """Two int32 keys from an int32 seed and an integer step (any dtype;
    the step is reduced to its low 32 bits)."""
    step = ops.cast(step, "int32")
    k0 = mix32(ops.bitwise_xor(mix32(ops.cast(seed, "int32")), step))
    k1 = mix32(k0 + ops.convert_to_tensor(_GOLDEN, "int32"))
    return k0, k1


def normal_from_counter(shape, key0, key1):
    """float32 standard normals of `shape` (Box-Muller, cosine branch, on
    two keyed uniform streams; 24-bit uniforms bound |z| by about 5.8).
    Under XLA this fuses into one loop: faster than the backends' own
    normal samplers there (see BENCHMARKS.md, gradient noise)."""
    size = 1
    for d in shape:
        size *= int(d)
    counter = ops.arange(size, dtype="int32")
    u1 = uniform_from_counter(counter, key0, key1)
    u2 = uniform_from_counter(counter, key1, key0 + 1)
    radius = ops.sqrt(-2.0 * ops.log(ops.maximum(1.0 - u1, _TINY)))
    return ops.reshape(radius * ops.cos(_TWO_PI * u2), tuple(shape))

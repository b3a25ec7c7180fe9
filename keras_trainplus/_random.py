"""Per-example random draws for the augmentation layers.

* Only per-example parameters are drawn (never per-pixel noise).
* Every draw is XLA-safe: Beta samples come from uniform and normal draws
  (Marsaglia and Tsang's gamma method, unrolled), not from TensorFlow's
  gamma sampler, which has no XLA kernel.
* Under `tf.distribute` each replica gets different numbers: the layer's
  seed generator advances identically on every replica, so one draw of
  ``(num_replicas,) + shape`` is made and each replica takes its own row.
  Replica ids are global under `MultiWorkerMirroredStrategy`, so workers
  differ too.
"""

import keras
from keras import ops

# Marsaglia-Tsang accepts a candidate with probability >= 0.95 for a >= 1;
# with 6 unrolled candidates a sample falls back to its mode-like value
# (v = 1) with probability < 0.05 ** 6 ~ 2e-8.
_GAMMA_ROUNDS = 6
_TINY = 1e-30


def replica_info():
    """(number of replicas in sync, this replica's id tensor or None)."""
    if keras.backend.backend() != "tensorflow":
        return 1, None
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None:
        return 1, None
    n = ctx.num_replicas_in_sync
    if n == 1:
        return 1, None
    return n, ctx.replica_id_in_sync_group


def _shape(shape):
    return tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)


def _per_replica(draw, shape, seed):
    shape = _shape(shape)
    n, replica = replica_info()
    if n == 1:
        return draw(shape, seed)
    values = draw((n,) + shape, seed)
    return ops.take(values, ops.cast(replica, "int32"), axis=0)


def uniform(shape, seed):
    """float32 uniform in [0, 1), different on every replica."""
    return _per_replica(
        lambda s, seed: keras.random.uniform(s, dtype="float32", seed=seed),
        shape, seed)


def normal(shape, seed):
    """float32 standard normal, different on every replica."""
    return _per_replica(
        lambda s, seed: keras.random.normal(s, dtype="float32", seed=seed),
        shape, seed)


def randint(shape, high, seed):
    """int32 uniform on {0, ..., high - 1} (`high` a tensor or int >= 1,
    broadcastable to `shape`)."""
    high = ops.cast(high, "float32")
    value = ops.floor(uniform(shape, seed) * high)
    return ops.cast(ops.minimum(value, ops.maximum(high - 1.0, 0.0)), "int32")


def log_gamma(alpha, shape, seed):
    """log of Gamma(alpha, 1) samples, float32, XLA-safe.

    `alpha` is a float scalar tensor (or float) > 0. For alpha < 1 the
    sample is drawn at alpha + 1 and boosted by ``U ** (1 / alpha)`` (in log
    space, so tiny alphas do not underflow).
    """
    shape = _shape(shape)
    alpha = ops.cast(alpha, "float32")
    boost = alpha < 1.0
    a = ops.where(boost, alpha + 1.0, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / ops.sqrt(9.0 * d)
    z = normal((_GAMMA_ROUNDS,) + shape, seed)
    u = uniform((_GAMMA_ROUNDS + 1,) + shape, seed)
    t = 1.0 + c * z
    v = t * t * t
    accept = ops.logical_and(
        t > 0.0,
        ops.log(ops.maximum(u[:-1], _TINY))
        < 0.5 * z * z + d - d * v + d * ops.log(ops.maximum(v, _TINY)))
    first = ops.argmax(ops.cast(accept, "int32"), axis=0)
    chosen = ops.take_along_axis(v, ops.expand_dims(first, 0), axis=0)[0]
    chosen = ops.where(ops.any(accept, axis=0), chosen, 1.0)
    log_g = ops.log(d) + ops.log(ops.maximum(chosen, _TINY))
    boosted = log_g + ops.log(ops.maximum(u[-1], _TINY)) / alpha
    return ops.where(boost, boosted, log_g)


def beta(alpha, shape, seed):
    """Beta(alpha, alpha) samples as a pair ``(lam, 1 - lam)``, float32,
    XLA-safe.

    Both are computed directly (``sigmoid(g1 - g2)`` and
    ``sigmoid(g2 - g1)``), so values near 1 keep full precision in the
    complement (float32 cannot resolve ``1 - 1e-9``). An `alpha` <= 0 gives
    ``(1, 0)``: no mixing.
    """
    shape = _shape(shape)
    alpha = ops.cast(alpha, "float32")
    safe = ops.maximum(alpha, 1e-6)
    g = log_gamma(safe, (2,) + shape, seed)
    on = alpha > 0.0
    return (ops.where(on, ops.sigmoid(g[0] - g[1]), 1.0),
            ops.where(on, ops.sigmoid(g[1] - g[0]), 0.0))


def permutation(batch_size, seed):
    """A random permutation of ``range(batch_size)`` (int32)."""
    return ops.cast(ops.argsort(uniform((batch_size,), seed)), "int32")


def bernoulli(shape, probability, seed):
    """True with `probability` (a tensor or float)."""
    return uniform(shape, seed) < ops.cast(probability, "float32")


__all__ = ["beta", "bernoulli", "log_gamma", "normal", "permutation",
           "randint", "replica_info", "uniform"]

"""Per-example random draws for the augmentation layers.

* Only per-example parameters are drawn (never per-pixel noise).
* Every draw is XLA-safe and a layer call makes one tiny random op: all
  numbers come from one uniform tensor (`Uniforms`, a counter hash keyed by
  two true random numbers); Beta samples use
  Marsaglia and Tsang's gamma method, unrolled, with Box-Muller normals,
  not TensorFlow's gamma sampler, which has no XLA kernel.
* Under `tf.distribute` each replica gets different numbers: the layer's
  seed generator advances identically on every replica, so one draw of
  ``(num_replicas,) + shape`` is made and each replica takes its own row.
  Replica ids are global under `MultiWorkerMirroredStrategy`, so workers
  differ too.
"""

import keras
from keras import ops

from keras_trainplus._hash_random import uniform_from_counter

# Marsaglia-Tsang accepts a candidate with probability >= 0.95 for a >= 1;
# with 6 unrolled candidates a sample falls back to its mode-like value
# (v = 1) with probability < 0.05 ** 6 ~ 2e-8.
_GAMMA_ROUNDS = 6  # even: Box-Muller gives normals in pairs
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
        shape,
        seed,
    )


def hashed_uniform(shape, seed):
    """float32 uniforms in [0, 1) (24 random bits each) of `shape`: two
    true random keys (one small random op, different on every replica)
    and a counter-based hash for the bulk. Under XLA:CPU a random op costs
    ~0.6 us per value, integer arithmetic almost nothing."""
    shape = _shape(shape)
    # Two finaliser rounds over a counter, keyed before each round.
    keys = ops.cast(ops.floor(uniform((2,), seed) * 16777216.0), "int32")
    size = 1
    for d in shape:
        size = size * d
    counter = ops.arange(size, dtype="int32")
    values = uniform_from_counter(counter, keys[0], keys[1])
    return ops.reshape(values, shape)


class Uniforms:
    """One uniform draw of ``(rows,) + shape`` handed out row by row, made
    with `hashed_uniform`: a layer call makes a single tiny random op
    (random ops are the expensive part under XLA:CPU)."""

    def __init__(self, rows, shape, seed):
        self.values = hashed_uniform((rows,) + _shape(shape), seed)
        self.rows = rows
        self.next = 0

    def take(self, n=None):
        count = 1 if n is None else n
        if self.next + count > self.rows:
            raise ValueError("internal: not enough uniform rows drawn")
        out = self.values[self.next : self.next + count]
        self.next += count
        return out[0] if n is None else out


def gamma_rows():
    """Uniform rows used by one `log_gamma_from` sample: 3 Box-Muller pairs
    give 6 candidate normals, 6 acceptance uniforms, 1 boost uniform."""
    return 2 * _GAMMA_ROUNDS + 1


def beta_rows():
    return gamma_rows() + 2


def _normal_pair(u1, u2):
    """Box-Muller: two independent standard normals from two uniforms."""
    radius = ops.sqrt(-2.0 * ops.log(ops.maximum(1.0 - u1, _TINY)))
    angle = 6.283185307179586 * u2
    return radius * ops.cos(angle), radius * ops.sin(angle)


def log_gamma_from(alpha, u):
    """log of Gamma(alpha, 1) samples from uniforms `u` of shape
    ``(gamma_rows(),) + shape`` (float32, XLA-safe).

    Marsaglia and Tsang's method, unrolled over a fixed number of
    candidates. For alpha < 1 the sample is drawn at alpha + 1 and boosted
    by ``U ** (1 / alpha)`` in log space, so tiny alphas do not underflow.
    """
    r = _GAMMA_ROUNDS
    alpha = ops.cast(alpha, "float32")
    boost = alpha < 1.0
    a = ops.where(boost, alpha + 1.0, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / ops.sqrt(9.0 * d)
    z = ops.concatenate(_normal_pair(u[: r // 2], u[r // 2 : r]), axis=0)
    t = 1.0 + c * z
    v = t * t * t
    accept = ops.logical_and(
        t > 0.0,
        ops.log(ops.maximum(u[r : 2 * r], _TINY))
        < 0.5 * z * z + d - d * v + d * ops.log(ops.maximum(v, _TINY)),
    )
    # The first accepted candidate (1.0 if none, probability < 2e-8).
    first = ops.logical_and(
        accept, ops.cumsum(ops.cast(accept, "int32"), axis=0) == 1
    )
    chosen = ops.sum(ops.where(first, v, 0.0), axis=0)
    chosen = ops.where(ops.any(first, axis=0), chosen, 1.0)
    log_g = ops.log(d) + ops.log(ops.maximum(chosen, _TINY))
    boosted = log_g + ops.log(ops.maximum(u[2 * r], _TINY)) / alpha
    return ops.where(boost, boosted, log_g)


def beta_from(alpha, draws):
    """Beta(alpha, alpha) samples as a pair ``(lam, 1 - lam)`` from
    `beta_rows()` rows of `draws`, float32, XLA-safe.

    Uses the Student-t form of the symmetric Beta, which needs one gamma
    and one normal sample: with ``G ~ Gamma(alpha)`` and ``Z ~ N(0, 1)``,
    ``lam = 1/2 + Z / (2 sqrt(Z**2 + 2 G))`` (``2 lam - 1`` is a scaled
    Student t with ``2 alpha`` degrees of freedom). The smaller of ``lam``
    and ``1 - lam`` is computed without cancellation,
    ``G / (s (s + |Z|))`` with ``s = sqrt(Z**2 + 2 G)``, so values near 0
    and 1 keep full precision in the complement. An `alpha` <= 0 gives
    ``(1, 0)``: no mixing.
    """
    alpha = ops.cast(alpha, "float32")
    safe = ops.maximum(alpha, 1e-6)
    u = draws.take(beta_rows())
    log_g = log_gamma_from(safe, u[: gamma_rows()])
    z = ops.sqrt(
        -2.0 * ops.log(ops.maximum(1.0 - u[gamma_rows()], _TINY))
    ) * ops.cos(6.283185307179586 * u[gamma_rows() + 1])
    g = ops.exp(log_g)
    s = ops.sqrt(z * z + 2.0 * g)
    small = ops.exp(
        log_g
        - ops.log(ops.maximum(s, _TINY))
        - ops.log(ops.maximum(s + ops.abs(z), _TINY))
    )
    small = ops.where(s > 0.0, small, 0.5)
    large = 1.0 - small
    positive = z >= 0.0
    on = alpha > 0.0
    lam = ops.where(positive, large, small)
    rest = ops.where(positive, small, large)
    return ops.where(on, lam, 1.0), ops.where(on, rest, 0.0)


def beta(alpha, shape, seed):
    """`beta_from` with its own draw."""
    return beta_from(alpha, Uniforms(beta_rows(), shape, seed))


def permutation_from(u):
    """A random permutation from a uniform vector (int32)."""
    return ops.cast(ops.argsort(u), "int32")


def int_from(u, high):
    """int32 uniform on {0, ..., high - 1} from uniforms `u`."""
    high = ops.cast(high, "float32")
    value = ops.floor(u * high)
    return ops.cast(ops.minimum(value, ops.maximum(high - 1.0, 0.0)), "int32")


def bernoulli_from(u, probability):
    return u < ops.cast(probability, "float32")


__all__ = [
    "Uniforms",
    "hashed_uniform",
    "beta",
    "beta_from",
    "beta_rows",
    "bernoulli_from",
    "gamma_rows",
    "int_from",
    "log_gamma_from",
    "permutation_from",
    "replica_info",
    "uniform",
]

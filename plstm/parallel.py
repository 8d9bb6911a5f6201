"""One program over every device: a mesh of a 'model' axis (packed models)
and a 'data' axis (the batch's rows), and a data-parallel gradient.

Each device computes the gradient of its rows inside a `jax.shard_map`, and
the devices average once per step with `lax.pmean`, after the backward pass
(XLA, given the batch's sharding under `jit` alone, places an all-reduce
inside the backward loop instead). On a CPU, host devices
(`jax_num_cpu_devices`) split the cores the same way.

The mean over devices of each device's mean loss is the mean over the whole
batch when the loss is a mean of per-example terms. A loss that sums over
its rows (`global_sum`), divides by a count that differs between devices
(`global_mean`, e.g. real tokens) or uses statistics of the whole batch
(`data_sum`, e.g. batch norm, a population firing rate) calls these
helpers, which make it exact; outside a data-parallel step they are plain
sums and quotients. Randomness drawn inside the loss is drawn per device.

A user's own step, data parallel (leaves of `batch` split on axis 0):

  mesh = plstm.parallel.make_mesh()              # every device on 'data'
  grad_fn = plstm.parallel.value_and_grad(loss, mesh, has_aux=True)

  @jax.jit
  def train_step(params, opt_state, batch):
    (loss_value, metrics), grads = grad_fn(params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics

  batch = jax.device_put(batch, jax.NamedSharding(mesh, jax.P("data")))
"""

from collections.abc import Callable

import jax
import numpy as np

MODEL = "model"
DATA = "data"


def make_mesh(models: int = 1, devices=None) -> jax.sharding.Mesh:
  """`devices` (default all) as a (`models`, rest) mesh of axes ('model',
  'data'). Its axis types are Auto, so code inside it needs no sharding
  annotations.

  Raises:
    ValueError: `models` does not divide the number of devices.
  """
  devices = jax.devices() if devices is None else list(devices)
  if models < 1 or len(devices) % models:
    raise ValueError(
      f"the model axis ({models} devices) must divide the {len(devices)} "
      "devices."
    )
  return jax.make_mesh(
    (models, len(devices) // models),
    (MODEL, DATA),
    axis_types=(jax.sharding.AxisType.Auto,) * 2,
    devices=devices,
  )


def _data_sharded() -> bool:
  """Whether the caller is traced inside a shard_map over the data axis."""
  return DATA in jax.sharding.get_abstract_mesh().manual_axes


def data_sum(x):
  """`x` (a pytree) summed over the data axis when traced inside this
  module's shard_maps, else `x`: the whole batch's sum of a statistic each
  device sums over its rows (e.g. batch norm's sums and counts)."""
  if not _data_sharded():
    return x
  return jax.lax.psum(x, DATA)


def global_sum(total):
  """`total` (summed over this device's rows) times the number of data
  devices inside this module's shard_maps, so that the mean over devices
  is the whole batch's sum; else `total`."""
  if not _data_sharded():
    return total
  return total * jax.lax.axis_size(DATA)


def global_mean(total, count):
  """`total / count` for a loss summed over this device's rows (`total`)
  and divided by a count that differs between devices (`count`, e.g. real
  tokens), scaled so that the mean over devices is the whole batch's
  `sum(total) / sum(count)`. No gradient flows through `count`."""
  count = jax.lax.stop_gradient(count)
  if not _data_sharded():
    return total / count
  devices = jax.lax.axis_size(DATA)
  return total / (jax.lax.psum(count, DATA) / devices)


def value_and_grad(
  fun: Callable, mesh: jax.sharding.Mesh | None = None, *, has_aux=False
) -> Callable:
  """`jax.value_and_grad(fun)`, data parallel over `mesh`'s data axis.

  The returned function takes `(params, batch, *args)` as `fun` does: the
  leaves of `batch` are split on axis 0 over the data axis (their size a
  multiple of its devices), `params` and `args` replicated. Each device
  differentiates `fun` on its rows; the values, aux and gradients are
  averaged over devices once (`lax.pmean`). `mesh` defaults to every device
  on the data axis (`make_mesh()`).
  """
  mesh = mesh or make_mesh()
  grad = jax.value_and_grad(fun, has_aux=has_aux)

  def local(params, batch, *args):
    return jax.lax.pmean(grad(params, batch, *args), DATA)

  def wrapped(params, batch, *args):
    specs = (jax.P(), jax.P(DATA)) + (jax.P(),) * len(args)
    return jax.shard_map(
      local, mesh=mesh, in_specs=specs, out_specs=jax.P(), check_vma=False
    )(params, batch, *args)

  return wrapped


def global_batch(batch, sharding: jax.NamedSharding):
  """The global arrays of `batch` (leaves [S, B, ...], the same on every
  process), split along B by `sharding`: each process hands
  `jax.make_array_from_process_local_data` only the rows its own devices
  hold."""

  def put(x):
    index = sharding.addressable_devices_indices_map(x.shape).values()
    rows = sorted({r for i in index for r in range(*i[1].indices(x.shape[1]))})
    return jax.make_array_from_process_local_data(
      sharding, x[:, np.array(rows)], x.shape
    )

  return jax.tree.map(put, batch)

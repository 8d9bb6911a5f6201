"""Data parallelism: one program over every device, the batch split on a
'data' axis of a mesh (several hosts included)."""

import jax
import numpy as np


def data_mesh() -> jax.sharding.Mesh:
  """All devices on one 'data' axis: the driver splits batches [S, B, ...]
  along B and replicates the train state. Its axis type is Auto, so
  experiment code needs no sharding annotations (the compiler propagates
  the batch's split); jax's default Explicit type would make it spell them
  out, e.g. for a random initial carry or an embedding lookup."""
  return jax.make_mesh(
    (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
  )


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

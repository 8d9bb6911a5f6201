"""Data parallel over the 2 test devices equals one device: values, gradients
and the whole-batch statistics of `plstm.parallel`; one reduction per step."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import plstm
from configs import freq_task as freq_config
from configs import language_model as lm_config
from experiments import freq_task, language_model
from plstm import parallel

KEY = jax.random.key(0)


def _close(a, b, rtol=1e-5, atol=1e-6):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _both(loss, params, batch):
  """(one device, every device) value_and_grad of `loss(params, batch)`."""
  mesh = parallel.make_mesh()
  assert mesh.shape[parallel.DATA] == 2
  split = jax.device_put(batch, jax.NamedSharding(mesh, jax.P(parallel.DATA)))
  one = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, batch)
  every = jax.jit(parallel.value_and_grad(loss, mesh, has_aux=True))(
    params, split
  )
  return one, every


def _task_both(task, training: bool):
  """`_both` of a task's loss, at its init and first training batch."""

  def loss(p, b):
    return task.loss(p, b, KEY, training=training)

  return _both(loss, task.init(KEY, KEY), task.train_batch(KEY, 0))


def _lstm_loss(params, batch):
  _, h = plstm.scan(plstm.LSTM(8), params, batch["x"], mask=batch["mask"])
  loss = jnp.mean((h[:, -1, 0] - batch["y"]) ** 2)
  return loss, {"loss": loss}


def _lstm_batch(b=6, t=7):
  k = jax.random.split(KEY, 3)
  lengths = jax.random.randint(k[2], (b,), 1, t + 1)
  return {
    "x": jax.random.normal(k[0], (b, t, 3)),
    "y": jax.random.normal(k[1], (b,)),
    "mask": jnp.arange(t)[None, :] >= t - lengths[:, None],
  }


def test_value_and_grad_of_a_mean_loss_equals_one_device():
  params = plstm.LSTM(8).init(KEY, 3)
  one, every = _both(_lstm_loss, params, _lstm_batch())
  _close(one, every)


@pytest.mark.parametrize("model", ["plstm", "lstm", "bn_lstm"])
def test_the_frequency_task_classifier_equals_one_device(model):
  """bn_lstm's batch statistics are the whole batch's (`data_sum`)."""
  config = freq_config.get_config("smoke")
  config.model.name = model
  _close(*_task_both(freq_task.make_task(config), training=True), rtol=2e-5)


def test_sequence_cross_entropy_counts_the_whole_batchs_tokens():
  k = jax.random.split(KEY, 2)
  logits = jax.random.normal(k[0], (4, 5, 3))
  labels = jax.random.randint(k[1], (4, 5), 0, 3)
  mask = jnp.array([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0] * 5])

  def loss(scale, b):
    z = scale * b["logits"]
    value = plstm.losses.sequence_cross_entropy(z, b["labels"], b["mask"])
    return value, {}

  batch = {"logits": logits, "labels": labels, "mask": mask}
  one, every = _both(loss, jnp.float32(1.5), batch)
  # Devices' token counts differ (6 and 2): a mean of per-device means
  # would be (mean_0 + mean_1) / 2.
  _close(one, every)


def test_the_firing_rate_regulariser_uses_the_whole_batchs_rate():
  """The rate is squared after the mean: a mean of per-device regularisers
  would differ, and so would its gradient."""
  x = jax.random.normal(KEY, (4, 6, 3))

  def loss(w, b):
    z = jax.nn.sigmoid(b["x"] @ w)  # [B, T, R], a smooth stand-in for spikes
    rate = plstm.firing_rate_loss(z, 0.2, dt=1.0)
    return rate, {"max": jnp.max(plstm.lsnn.population_rate(z))}

  w = jax.random.normal(jax.random.key(1), (3, 5))
  one, every = _both(loss, w, {"x": x})
  _close(one, every)


def test_the_language_model_sums_and_counts_the_whole_batch():
  task = language_model.make_task(lm_config.get_config("smoke"))
  _close(*_task_both(task, training=False), rtol=2e-5)


def test_outside_a_data_parallel_step_the_helpers_are_plain():
  x = jnp.arange(3.0)
  np.testing.assert_array_equal(parallel.data_sum(x), x)
  assert parallel.global_sum(5.0) == 5.0
  assert parallel.global_mean(6.0, 3.0) == 2.0


def _while_bodies_with_all_reduce(hlo: str) -> list[str]:
  """The while-loop bodies of an HLO module that hold an all-reduce."""
  bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
  blocks = re.split(r"\n(?=\S)", hlo)  # one block per computation
  return [
    b.split()[0]
    for b in blocks
    if b.split() and b.split()[0].lstrip("%") in bodies and "all-reduce" in b
  ]


def test_gradients_are_reduced_once_after_the_loop():
  """Under jit with a sharded batch, XLA all-reduces the weights' gradient
  inside the backward loop; in `value_and_grad`'s shard_map, once after."""
  params = plstm.LSTM(8).init(KEY, 3)
  batch = _lstm_batch(b=8, t=20)
  mesh = parallel.make_mesh()
  split = jax.device_put(batch, jax.NamedSharding(mesh, jax.P(parallel.DATA)))
  tx = optax.adam(1e-3)

  def step(grad_fn):
    def update(params, opt_state, batch):
      _, grads = grad_fn(params, batch)
      with jax.numpy_dtype_promotion("standard"):  # Adam's int count
        updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    return jax.jit(update).lower(params, tx.init(params), split).compile()

  ours = step(parallel.value_and_grad(_lstm_loss, mesh, has_aux=True))
  hlo = ours.as_text()
  assert "all-reduce" in hlo
  assert _while_bodies_with_all_reduce(hlo) == []

"""Sequential MNIST batches, models and configs (experiments/smnist.py)."""

import math

import jax
import numpy as np
import optax
import pytest

from configs import smnist as smnist_config
from experiments import smnist
from experiments.common import mnist_data
from plstm import parallel
from plstm.train import task as task_lib


def _smoke(**data):
  config = smnist_config.get_config("smoke")
  config.data.update(data)
  return config


def _task(config):
  return smnist.make_task(config)


def _cell(config):
  return smnist.make_cell(config.model)


KEY = jax.random.key(0)


def _rows(batch) -> list[bytes]:
  return [row.tobytes() for row in batch["x"][..., 0]]


def test_batches_are_pixels_in_row_order_with_the_pixel_index():
  config = _smoke(batch_size=4)
  batch = _task(config).train_batch(KEY, 3)
  assert batch["x"].shape == (4, 784, 1) and batch["x"].dtype == np.float32
  assert batch["label"].dtype == np.int32
  np.testing.assert_array_equal(batch["weight"], np.ones(4, np.float32))
  np.testing.assert_array_equal(
    batch["t"], np.tile(np.arange(784, dtype=np.float32), (4, 1))
  )
  images, labels = mnist_data.synthetic("train")
  flat = images.reshape(-1, 784) / np.float32(255)
  for x, label in zip(batch["x"][..., 0], batch["label"], strict=True):
    (i,) = np.flatnonzero((flat == x).all(1))
    assert label == labels[i]
    # Pixel index r * 28 + c holds row r, column c, scaled to [0, 1].
    np.testing.assert_allclose(x[3 * 28 + 5], images[i, 3, 5] / 255)
  assert 0 <= batch["x"].min() and batch["x"].max() <= 1


def test_an_epoch_visits_every_image_once_as_a_function_of_key_and_step():
  config = _smoke(batch_size=10)  # 512 images: 51 batches, 2 left out
  train_batch = _task(config).train_batch
  epoch = [train_batch(KEY, s) for s in range(51)]
  rows = [r for b in epoch for r in _rows(b)]
  assert len(set(rows)) == 510
  images, _ = mnist_data.synthetic("train")
  all_rows = {(im.reshape(784) / np.float32(255)).tobytes() for im in images}
  assert set(rows) <= all_rows
  # The next epoch is another order; a step's batch never changes.
  assert _rows(train_batch(KEY, 51)) != _rows(epoch[0])
  np.testing.assert_array_equal(train_batch(KEY, 7)["x"], epoch[7]["x"])
  assert _rows(train_batch(jax.random.key(1), 7)) != _rows(epoch[7])


def test_eval_batches_are_fixed_and_weighted_to_the_exact_mean():
  config = _smoke()  # 12 test images in batches of 8
  eval_batches = _task(config).eval_batches
  batches = eval_batches(KEY, 1)
  assert len(batches) == 2
  weight = np.concatenate([b["weight"] for b in batches])
  np.testing.assert_allclose(weight, [16 / 12] * 12 + [0] * 4)
  # The driver's plain mean of batch means weighs every real image 1 / 12.
  np.testing.assert_allclose(np.mean([b["weight"].mean() for b in batches]), 1)
  again = _task(_smoke()).eval_batches(KEY, 2)
  other_seed = eval_batches(task_lib.seed_keys(5).eval, 1)
  for a, b, c in zip(batches, again, other_seed, strict=True):
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["x"], c["x"])
  # eval_size 0 is the whole test set in order.
  whole = _task(_smoke(eval_size=0)).eval_batches(KEY, 1)
  images, labels = mnist_data.synthetic("test")
  assert len(whole) == 64 and all(b["weight"].min() == 1 for b in whole)
  np.testing.assert_array_equal(
    np.concatenate([b["label"] for b in whole]), labels
  )


def test_weighted_metrics_equal_the_plain_mean_over_real_images():
  config = _smoke()
  config.model.init_state_std = 0.0  # No per-position noise to compare.
  task, cell = _task(config), _cell(config)
  params = task.init(KEY, KEY)

  @jax.jit
  def metrics_and_logits(batch):
    key = jax.random.key(1)
    _, metrics = task.loss(params, batch, key, training=False)
    return metrics, smnist.logits(cell, 0.0, params, batch, key, training=False)

  metrics, logits = zip(
    *(metrics_and_logits(b) for b in task.eval_batches(KEY, 1)),
    strict=True,
  )
  # The 12 real images and their logits, without the padding.
  _, labels = mnist_data.synthetic("test")
  idx = np.asarray(jax.random.permutation(jax.random.key(0), 512))[:12]
  logits = np.concatenate(logits)[:12]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx])
  np.testing.assert_allclose(
    np.mean([m["loss"] for m in metrics]), ce.mean(), rtol=1e-5
  )
  np.testing.assert_allclose(
    np.mean([m["accuracy"] for m in metrics]),
    np.mean(np.argmax(logits, -1) == labels[idx]),
    rtol=1e-6,
  )


def test_initialisation_is_the_tensorflow_custom_cells():
  config = smnist_config.get_config("paper")
  h = config.model.hidden
  params = jax.device_get(_task(config).init(KEY, KEY))
  rnn = params["rnn"]
  limit = math.sqrt(6 / (1 + 5 * h))  # Glorot over the fused [1 + H, 4H].
  kernel = np.concatenate([rnn["w_x"], rnn["w_h"]])
  assert kernel.shape == (1 + h, 4 * h) and np.abs(kernel).max() <= limit
  np.testing.assert_allclose(kernel.std(), limit / math.sqrt(3), rtol=0.05)
  np.testing.assert_array_equal(rnn["b"], 0)  # No forget or input bias.
  for name in ("p_i", "p_f", "p_o"):
    assert np.abs(rnn[name]).max() <= math.sqrt(3 / h)
  assert 1 <= rnn["tau"].min() and rnn["tau"].max() <= math.exp(6)
  assert np.all((0 <= rnn["shift"]) & (rnn["shift"] < rnn["tau"]))
  np.testing.assert_allclose(rnn["r_on"], 0.05)
  assert params["head"]["w"].shape == (h, 10)

  config.model.name = "lstm"
  rnn = _task(config).init(KEY, KEY)["rnn"]
  assert set(rnn) == {"w_x", "w_h", "b"}
  b = np.asarray(rnn["b"]).reshape(4, h)  # Gates i, g... as i, f, g, o.
  np.testing.assert_array_equal(b, [[0] * h, [1] * h, [0] * h, [0] * h])


def test_initial_state_is_random_and_drawn_from_the_rng():
  """Also pins data, init and model together (a golden loss)."""
  config = _smoke()
  task = _task(config)
  params = task.init(KEY, KEY)
  batch = task.train_batch(KEY, 0)

  def loss_of(config):
    loss = _task(config).loss
    return jax.jit(
      lambda seed: loss(params, batch, jax.random.key(seed), training=True)[0]
    )

  loss = loss_of(config)
  np.testing.assert_allclose(loss(1), GOLDEN_LOSS, rtol=1e-5)
  assert loss(1) == loss(1) and loss(1) != loss(2)
  config.model.init_state_std = 0.0
  loss = loss_of(config)
  assert loss(1) == loss(2)


GOLDEN_LOSS = 2.287159  # the batch of step 0 of key(0)'s stream


def test_gradients_reach_the_first_pixels_through_the_time_gate_only():
  """Every param gets a finite nonzero gradient, and the first row of
  pixels (steps 0..27 of 784) moves the loss of the Phased LSTM; the LSTM's
  gradient there vanishes (at this init), the paper's point."""
  first_row = {}
  for name in ("plstm", "lstm"):
    config = _smoke()
    config.model.name = name
    task = _task(config)
    batch = task.train_batch(KEY, 0)
    params = task.init(KEY, KEY)

    def loss(params, x, task=task, batch=batch):
      batch = {**batch, "x": x}
      key = jax.random.key(1)
      return task.loss(params, batch, key, training=True)[0]

    grads, dx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, batch["x"])
    for path, g in jax.tree.leaves_with_path(grads):
      assert np.all(np.isfinite(g)) and np.any(g != 0), (name, path)
    first_row[name] = np.abs(dx[:, :28]).max()
  assert first_row["plstm"] > 1e-7
  assert first_row["lstm"] < 1e-20


def test_bad_config_values_are_reported():
  for field, value, where in (
    ("name", "gru", "config.model.name"),
    ("init_state_std", -0.1, "config.model.init_state_std"),
  ):
    config = _smoke()
    config.model[field] = value
    with pytest.raises(ValueError, match=where):
      _task(config)
  config = _smoke(eval_size=-1)
  with pytest.raises(ValueError, match="config.data.eval_size"):
    _task(config)
  with pytest.raises(ValueError, match=r"config.data.eval_size \(600\)"):
    _task(_smoke(eval_size=600)).eval_batches(KEY, 1)
  with pytest.raises(ValueError, match=r"config.data.batch_size \(600\)"):
    _task(_smoke(batch_size=600)).train_batch(KEY, 0)


def test_paper_config_is_the_original_and_small_differs_only_in_size():
  paper = smnist_config.get_config("paper")
  assert paper.model.hidden == 32 and paper.data.batch_size == 256
  assert paper.steps_per_epoch * paper.num_epochs == 2000
  assert paper.optimizer.learning_rate == 1e-3
  assert paper.optimizer.name == "adam" and paper.optimizer.clip == "none"
  assert paper.data.dir == "../shared/data/mnist" and not paper.data.synthetic
  assert paper.data.eval_size == 0  # all 10,000 test images
  assert paper.target == 0.85
  small = smnist_config.get_config().to_dict()
  differ = {
    (group, key)
    for group, values in paper.to_dict().items()
    if isinstance(values, dict)
    for key, value in values.items()
    if small[group][key] != value
  }
  assert differ == {("data", "batch_size"), ("data", "eval_size")}
  with pytest.raises(ValueError, match="unknown variant 'default'"):
    smnist_config.get_config("default")


def test_device_sharded_batches_give_the_same_loss():
  """Batches split over the 2 test devices by the driver's mesh give the
  loss of one device (the random initial state included)."""
  task = _task(_smoke())
  params = task.init(KEY, KEY)
  batch = task.train_batch(KEY, 0)
  mesh = parallel.make_mesh()
  sharded = jax.device_put(batch, jax.NamedSharding(mesh, jax.P("data")))
  loss = jax.jit(lambda p, b: task.loss(p, b, jax.random.key(1), training=True))
  np.testing.assert_allclose(
    loss(params, sharded)[0], loss(params, batch)[0], rtol=1e-6
  )

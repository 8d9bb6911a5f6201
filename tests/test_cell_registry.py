"""A cell runs in every Phased LSTM experiment once it is one line of
`experiments.common.models.CELLS`: a GRU defined here trains in the
frequency tasks, the adding task and event MNIST, and through the driver."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import adding_task as adding_config
from configs import freq_combo_task as combo_config
from configs import freq_task as freq_config
from configs import nmnist as nmnist_config
from experiments import adding_task, freq_combo_task, freq_task, nmnist
from experiments.common import models
from plstm import train
from plstm.train import task as task_lib
from tests.test_cell_contract import GRU as ArrayGRU


class GRUState(NamedTuple):
  h: jax.Array  # [B, H], read by the experiments' heads as `carry.h`


class GRU(ArrayGRU):
  """The GRU of test_cell_contract with its h in a NamedTuple carry, which
  the experiments' heads read (`carry.h`)."""

  def initial_carry(self, batch_size, dtype=jnp.float32):
    return GRUState(super().initial_carry(batch_size, dtype))

  def step(self, params, carry, x, *, training=False):
    h, y = super().step(params, carry.h, x, training=training)
    return GRUState(h), y


@pytest.fixture
def gru(monkeypatch):
  """Registers the GRU as config.model.name "gru": the one line a new cell
  needs."""
  monkeypatch.setitem(models.CELLS, "gru", lambda m: GRU(m.hidden))
  return "gru"


@pytest.mark.parametrize(
  "config_module, experiment",
  [
    (freq_config, freq_task),
    (combo_config, freq_combo_task),
    (adding_config, adding_task),
    (nmnist_config, nmnist),
  ],
  ids=["freq_task", "freq_combo_task", "adding_task", "nmnist"],
)
def test_a_registered_cell_trains_in_every_experiment(
  gru, config_module, experiment
):
  config = config_module.get_config("smoke")
  config.model.name = gru
  task = experiment.make_task(config)
  keys = task_lib.seed_keys(0)
  params = task.init(keys.init, keys.structure)
  assert set(params["rnn"]) == {"w", "u"}
  batch = task.train_batch(keys.data, 0)

  def loss(p):
    return task.loss(p, batch, keys.noise, training=True)[0]

  value, grads = jax.value_and_grad(loss)(params)
  assert np.isfinite(value)
  assert float(jnp.abs(grads["rnn"]["u"]).sum()) > 0


def test_an_unregistered_name_lists_the_registered_cells():
  config = freq_config.get_config("smoke")
  config.model.name = "gru"
  with pytest.raises(
    ValueError, match=r"one of \('plstm', 'lstm', 'bn_lstm'\)"
  ):
    freq_task.make_task(config)


def test_the_driver_trains_a_registered_cell(gru, tmp_path):
  config = freq_config.get_config("smoke")
  config.model.name = gru
  results = train.train_and_evaluate(config, tmp_path)
  assert results["config"]["model"]["name"] == "gru"
  assert 0 <= results["final"]["val_accuracy"] <= 1
  losses = [r["val_loss"] for r in results["history"]]
  assert np.all(np.isfinite(losses))

"""The LSNN experiments end to end: sMNIST with DEEP R and store-recall."""

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import plstm
from experiments import smnist_lsnn, store_recall
from experiments.common import lsnn
from plstm import train
from plstm.train import task as task_lib

ROOT = Path(__file__).parent.parent


def _config(name: str, arg: str = "smoke"):
  path = ROOT / "configs" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.slow
def test_smnist_lsnn_keeps_budget_and_signs_and_draws_the_raster(tmp_path):
  config = _config("smnist_lsnn")
  train.train_and_evaluate(config, tmp_path)
  m = config.model
  n_rec = m.n_regular + m.n_adaptive
  sizes = m.n_in * n_rec + n_rec * n_rec + n_rec * smnist_lsnn.N_CLASSES
  budget = int(sizes * config.rewiring.connectivity)
  records = [
    json.loads(line)
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
  ]
  connectivity = [r["train_connectivity"] for r in records if "train_loss" in r]
  # Metrics see the params before each step: the sampled init is below the
  # budget (duplicate draws), every later window exactly at it.
  assert connectivity[0] < budget / sizes
  np.testing.assert_allclose(connectivity[1:], budget / sizes, rtol=1e-6)
  png = tmp_path / "lsnn_smnist.png"
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # Dale's law: every weight keeps its presynaptic neuron's sign.
  step = max(int(p.name) for p in (tmp_path / "checkpoints").iterdir())
  state = ocp.StandardCheckpointer().restore(
    tmp_path / "checkpoints" / str(step) / "state"
  )
  params = jax.tree.map(lambda a: np.asarray(a[0]), state["params"])
  assert sum(np.count_nonzero(params[k]) for k in lsnn.REWIRED) == budget
  net = lsnn.make_network(config, 80, smnist_lsnn.N_CLASSES, bias=True)
  structure = task_lib.seed_keys(config.seed).structure
  in_sign, rec_sign = map(np.asarray, net.signs(structure))
  for name, sign in (
    ("w_in", in_sign),
    ("w_rec", rec_sign),
    ("w_out", rec_sign),
  ):
    assert np.all(params[name] * sign[:, None] >= 0), name
  assert (in_sign < 0).sum() == 80 - (int(0.75 * 80) + 1)


@pytest.mark.slow
def test_store_recall_smoke_writes_its_figure(tmp_path):
  config = _config("store_recall")
  results = train.train_and_evaluate(config, tmp_path)
  assert "val_recall_error" in results["final"]
  # The headline is the recall error itself (lower is better), no accuracy.
  assert (results["metric"], results["mode"]) == ("recall_error", "min")
  assert "val_accuracy" not in results["final"]
  png = tmp_path / "lsnn_store_recall.png"
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_store_recall_loss_counts_recall_slots_only():
  task = store_recall.make_task(_config("store_recall"))
  params = task.init(jax.random.key(0), jax.random.key(2))
  batch = task.train_batch(jax.random.key(3), 0)
  key = jax.random.key(1)
  _, metrics = task.loss(params, batch, key, training=True)
  # Changing the targets off recall slots changes nothing.
  other = dict(batch, target=np.where(batch["is_recall"], batch["target"], 1))
  _, again = task.loss(params, other, key, training=True)
  assert metrics["ce"] == pytest.approx(float(again["ce"]))
  assert 0 <= metrics["recall_error"] <= 1


def test_bad_lsnn_configs_are_one_line_errors():
  config = _config("smnist_lsnn")
  config.rewiring.connectivity = 1.5
  with pytest.raises(ValueError, match="connectivity must be in"):
    smnist_lsnn.make_task(config)
  config = _config("store_recall")
  config.data.seq_delay = 5
  with pytest.raises(ValueError, match="seq_len must exceed"):
    store_recall.make_task(config)


@pytest.mark.parametrize("name", ["smnist_lsnn", "store_recall"])
def test_structure_key_draws_delays_and_signs(name):
  """Seeds trained together get their own delays and signs (and DEEP R
  stream): all come from the structure key, none from the init key."""
  config = _config(name)
  config.rewiring.connectivity = 0.3  # store-recall's smoke is dense
  config.rewiring.neuron_sign = True
  if name == "store_recall":
    config.model.n_in = 40  # 8 inputs, 1 inhibitory: 1 in 8 shuffles agree
  module = {"smnist_lsnn": smnist_lsnn, "store_recall": store_recall}[name]
  task = module.make_task(config)
  bias = module is smnist_lsnn
  net = lsnn.make_network(config, config.model.n_in, module.N_CLASSES, bias)
  # One program for every draw: init vmapped over (init, structure) keys,
  # as plstm.train draws the seeds'.
  seed_0, seed_1 = (task_lib.seed_keys(s) for s in (0, 1))
  key, a, b = (jax.random.key(i) for i in range(3))
  inits = [key, key, key, jax.random.key(5), seed_0.init, seed_1.init]
  structures = [a, a, b, a, seed_0.structure, seed_1.structure]
  drawn = jax.jit(jax.vmap(task.init))(jnp.stack(inits), jnp.stack(structures))
  first, same, other, other_init, seed_0, seed_1 = (
    jax.tree.map(lambda x, i=i: np.asarray(x[i]), drawn) for i in range(6)
  )
  for k in ("d_in", "d_rec"):
    assert first[k].dtype == np.int32
    np.testing.assert_array_equal(first[k], same[k])
    np.testing.assert_array_equal(first[k], other_init[k])
    assert not np.array_equal(first[k], other[k]), k
    assert not np.array_equal(seed_0[k], seed_1[k]), k
  signs_a, signs_b = net.signs(a), net.signs(b)
  np.testing.assert_array_equal(signs_a[0], net.signs(a)[0])
  assert not np.array_equal(signs_a[0], signs_b[0])
  # The weights follow the signs of their structure key.
  for params, (in_sign, rec_sign) in ((first, signs_a), (other, signs_b)):
    assert np.all(params["w_in"] * np.asarray(in_sign)[:, None] >= 0)
    assert np.all(params["w_rec"] * np.asarray(rec_sign)[:, None] >= 0)
  # DEEP R draws its stream from the structure key too.
  w = plstm.trainable(first)
  deep_r_key = lambda s: jax.random.key_data(
    task.optimizer(s).init(w)[1].inner_state.key
  )
  np.testing.assert_array_equal(deep_r_key(a), deep_r_key(a))
  assert not np.array_equal(deep_r_key(a), deep_r_key(b))

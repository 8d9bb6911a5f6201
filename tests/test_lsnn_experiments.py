"""The LSNN experiments end to end: sMNIST with DEEP R and store-recall."""

import importlib.util
import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments.common import lsnn
from experiments import smnist_lsnn, store_recall
from plstm import train

ROOT = Path(__file__).parent.parent


def _config(name: str, arg: str = "smoke"):
  path = ROOT / "configs" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


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
  in_sign, rec_sign = map(np.asarray, lsnn.neuron_signs(config, 80))
  for name, sign in (
    ("w_in", in_sign),
    ("w_rec", rec_sign),
    ("w_out", rec_sign),
  ):
    assert np.all(params[name] * sign[:, None] >= 0), name
  assert (in_sign < 0).sum() == 80 - (int(0.75 * 80) + 1)


def test_store_recall_smoke_writes_its_figure(tmp_path):
  config = _config("store_recall")
  results = train.train_and_evaluate(config, tmp_path)
  assert "val_recall_error" in results["final"]
  np.testing.assert_allclose(
    results["final"]["val_accuracy"], 1 - results["final"]["val_recall_error"]
  )
  png = tmp_path / "lsnn_store_recall.png"
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_store_recall_loss_counts_recall_slots_only():
  config = _config("store_recall")
  params = store_recall.init_params(config, jax.random.key(0))
  batch = store_recall.train_batch(config, 0)
  key = jax.random.key(1)
  _, metrics = store_recall.loss_fn(config, params, batch, key, training=True)
  # Changing the targets off recall slots changes nothing.
  other = dict(batch, target=np.where(batch["is_recall"], batch["target"], 1))
  _, again = store_recall.loss_fn(config, params, other, key, training=True)
  assert metrics["ce"] == pytest.approx(float(again["ce"]))
  assert 0 <= metrics["recall_error"] <= 1


def test_bad_lsnn_configs_are_one_line_errors():
  config = _config("smnist_lsnn")
  config.rewiring.connectivity = 1.5
  with pytest.raises(ValueError, match="connectivity must be in"):
    smnist_lsnn.init_params(config, jax.random.key(0))
  config = _config("store_recall")
  config.data.seq_delay = 5
  with pytest.raises(ValueError, match="seq_len must exceed"):
    store_recall.init_params(config, jax.random.key(0))

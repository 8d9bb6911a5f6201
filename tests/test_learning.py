"""End-to-end learning results on the frequency task (seed 0, CPU)."""

import pytest

from configs import freq_task as freq_config
from plstm import train


@pytest.mark.slow
def test_phased_lstm_learns_the_async_task_in_five_epochs(tmp_path):
  """The default config, cut to 5 epochs (about a minute on 2 cores)."""
  config = freq_config.get_config()
  config.num_epochs = 5
  config.progress_bar = False
  results = train.train_and_evaluate(config, tmp_path)
  assert results["final"]["val_accuracy"] >= 0.80


@pytest.mark.long
def test_readme_command_reaches_95_percent(tmp_path):
  """The README's main command: >= 95% on async (about 5 minutes)."""
  config = freq_config.get_config()
  config.progress_bar = False
  results = train.train_and_evaluate(config, tmp_path)
  assert results["final"]["val_accuracy"] >= 0.95
  assert results["target_reached_step"] is not None


@pytest.mark.long
def test_readme_command_in_bfloat16_reaches_the_target(tmp_path):
  """The main command with bfloat16 matrix products
  (`--config.model.dtype=bfloat16`): the float32 run's 95% target."""
  config = freq_config.get_config()
  config.model.dtype = "bfloat16"
  config.progress_bar = False
  results = train.train_and_evaluate(config, tmp_path)
  assert results["config"]["model"]["dtype"] == "bfloat16"
  assert results["target_reached_step"] is not None
  assert results["final"]["val_accuracy"] >= 0.95


@pytest.mark.long
def test_phased_lstm_beats_lstm_on_async(tmp_path):
  """The paper's Fig. 3 ordering at a 10-epoch budget."""
  accuracy = {}
  for name in ("plstm", "lstm"):
    config = freq_config.get_config()
    config.model.name = name
    config.num_epochs = 10
    config.progress_bar = False
    results = train.train_and_evaluate(config, tmp_path / name)
    accuracy[name] = results["final"]["val_accuracy"]
  assert accuracy["plstm"] >= accuracy["lstm"] + 0.1

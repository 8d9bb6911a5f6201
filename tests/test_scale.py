"""One program over all devices: 1 or 8 of them, or 2 processes (hosts)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import freq_task as freq_config
from plstm import train

ROOT = Path(__file__).parent.parent
SMOKE = "--config=configs/freq_task.py:smoke"  # 6 steps, batch 8

# `python -c HOST OUT --flags...` runs plstm.train and, at every save,
# writes the params this process holds in its own memory (its replica) to
# OUT/host{process}_step{step}.npz.
HOST = """
import sys
import jax, numpy as np, orbax.checkpoint as ocp
from absl import app
from plstm.train import cli

out = sys.argv.pop(1)
real_save = ocp.CheckpointManager.save

def save(self, step, *args, **kwargs):
  params = jax.device_get(kwargs["args"].state.item.params)
  np.savez(
    f"{out}/host{jax.process_index()}_step{step}.npz",
    *jax.tree.leaves(params),
  )
  return real_save(self, step, *args, **kwargs)

ocp.CheckpointManager.save = save
app.run(cli.main, flags_parser=cli._parse_flags)
"""


def _start(out: Path, *flags: str, devices: int) -> subprocess.Popen:
  out.mkdir(parents=True, exist_ok=True)
  env = {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "JAX_NUM_CPU_DEVICES": str(devices),
    "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
  }
  return subprocess.Popen(
    [sys.executable, "-c", HOST, str(out), *flags],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _wait(*procs: subprocess.Popen) -> list[str]:
  """The stdout of each, once all ended well (all are killed on a timeout,
  so that a host waiting for a dead peer does not outlive the test)."""
  outputs = []
  try:
    for p in procs:
      stdout, stderr = p.communicate(timeout=300)
      assert p.returncode == 0, stderr[-3000:]
      outputs.append(stdout)
  finally:
    for p in procs:
      p.kill()
  return outputs


def _held(out: Path, process: int, step: int = 6) -> list[np.ndarray]:
  with np.load(out / f"host{process}_step{step}.npz") as f:
    return [f[f"arr_{i}"] for i in range(len(f.files))]


def _assert_close(a: list, b: list):
  assert len(a) == len(b)
  # Adam divides by sqrt(v): a weight whose gradient is near zero moves by
  # up to ~lr, so a different order of the sums can shift it by ~1e-6.
  for x, y in zip(a, b, strict=True):
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=5e-6)


@pytest.mark.slow
def test_one_and_eight_devices_train_the_same_params(tmp_path):
  runs = {
    n: _start(
      tmp_path / f"out{n}", SMOKE, f"--workdir={tmp_path}/{n}", devices=n
    )
    for n in (1, 8)
  }
  _wait(*runs.values())
  results = {
    n: json.loads((tmp_path / f"{n}/results.json").read_text()) for n in runs
  }
  assert results[1]["devices"] == 1 and results[8]["devices"] == 8
  one, eight = _held(tmp_path / "out1", 0), _held(tmp_path / "out8", 0)
  _assert_close(one, eight)
  earlier = _held(tmp_path / "out1", 0, step=3)
  assert any(np.any(a != b) for a, b in zip(one, earlier, strict=True))
  np.testing.assert_allclose(
    results[1]["final"]["val_loss"], results[8]["final"]["val_loss"], rtol=1e-5
  )


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_hosts_hold_the_params_of_one_process(tmp_path):
  """3 steps (gloo's all-reduces across processes are slow)."""
  address = f"127.0.0.1:{_free_port()}"
  hosts = [
    _start(
      tmp_path / "out",
      SMOKE,
      "--config.num_epochs=1",
      f"--workdir={tmp_path}/hosts",
      f"--coordinator_address={address}",
      "--num_processes=2",
      f"--process_id={i}",
      devices=1,
    )
    for i in range(2)
  ]
  # Meanwhile one process with 2 devices (tests/conftest.py), here.
  config = freq_config.get_config("smoke")
  config.num_epochs = 1
  alone = train.train_and_evaluate(config, tmp_path / "alone")
  stdout = _wait(*hosts)

  ckpt = tmp_path / "alone/checkpoints/3/state"
  reference = jax.tree.leaves(
    ocp.StandardCheckpointer().restore(ckpt)["params"]
  )
  host0, host1 = (_held(tmp_path / "out", i, step=3) for i in range(2))
  jax.tree.map(np.testing.assert_array_equal, host0, host1)
  _assert_close(host0, reference)

  results = json.loads((tmp_path / "hosts/results.json").read_text())
  assert (results["processes"], results["devices"]) == (2, 2)
  np.testing.assert_allclose(
    results["final"]["val_loss"], alone["final"]["val_loss"], rtol=1e-5
  )
  # Process 0 alone writes and prints; both saved their shards.
  records = (tmp_path / "hosts/metrics.jsonl").read_text().splitlines()
  assert len(records) == len(
    (tmp_path / "alone/metrics.jsonl").read_text().splitlines()
  )
  assert "Final val_accuracy" in stdout[0]
  assert "val_accuracy" not in stdout[1]
  assert [p.name for p in (tmp_path / "hosts/checkpoints").iterdir()] == ["3"]

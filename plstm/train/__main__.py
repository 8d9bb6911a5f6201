"""`python -m plstm.train`: the trainer's command line (`plstm.train.cli`)."""

from plstm.train import cli

if __name__ == "__main__":
  cli.run()

"""The `cnn-cifar` command line: a Click group of the training commands (`train`) and the
commands that read their results (`tools`); `common` holds what they share.

The top layer: it may import every package below it (commands, search, training, data,
nn, tracking, results, config, core); nothing imports it.
"""

from __future__ import annotations

import os

import click

from .. import __version__
from . import tools, train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cnn-cifar")
def main():
    """Declare CNNs in YAML, cross-validate them, search their hyperparameters and
    evaluate the winner on the CIFAR-10 test set.

    Every training command reads CIFAR-10 from --data PATH (or CNN_CIFAR_DATA): the
    official cifar-10-python.tar.gz, its extracted folder, an image folder or archive, or
    an .npz. Without it, Keras downloads CIFAR-10 (needs internet).

    CONFIG is a YAML file, or the name of a config shipped with the package (two_conv,
    two_conv_hidden, final, search, ...; any install has them, e.g. `cnn-cifar cv two_conv`).

    \b
    Examples:
      export CNN_CIFAR_DATA=~/data/cifar-10-python.tar.gz
      cnn-cifar cv configs/two_conv.yaml --subset 5000
      cnn-cifar cv configs/two_conv.yaml --data ~/data/cifar-10-python.tar.gz
      cnn-cifar search configs/search.yaml --jobs 2
      cnn-cifar evaluate --best
      cnn-cifar compare results/RUN_A results/RUN_B
      cnn-cifar report
    """
    # TensorFlow's C++ start-up lines (oneDNN notices, missing CUDA) are noise for a user of
    # the command; set before any command loads it, and inherited by the worker processes.
    # A library user's environment is theirs: importing the package changes nothing.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


for command in (train.cv, train.search, train.evaluate, tools.predict, tools.report, tools.compare):
    main.add_command(command)

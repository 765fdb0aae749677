"""`python -m cnn_cifar.cli`."""

from . import main

main()

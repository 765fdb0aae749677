"""`python -m cnn_cifar.cli`."""

from . import main

if __name__ == "__main__":  # importing this module (a wheel check walks them all) runs nothing
    main()

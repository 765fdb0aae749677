"""Data sets: detecting, decoding, caching and subsetting a source (`sources`), the
CIFAR-10 batches and npz readers (`formats`), one image file's decoder, which
`cnn-cifar predict` shares (`images`), image folders and archives (`image_folders`), and a
config's data resolved against --data and $CNN_CIFAR_DATA, probed before anything is
decoded, then decoded once per process (`dataset`).

Imports `config` and `core`.
"""

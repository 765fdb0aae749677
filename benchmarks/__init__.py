"""Benchmark the project's training against the tutorial's plain Keras loop.

    python -m benchmarks --data D                     # all but speedrun, ~45 min on 2 cores
    python -m benchmarks --quick --data D             # smaller slices and budgets, ~5 min
    python -m benchmarks --smoke --data D             # every part on a tiny slice, < 2 min (CI)
    python -m benchmarks --only throughput,memory --data D
    python -m benchmarks --only throughput --variant f32:train.precision=float32 --data D
    python -m benchmarks --only speedrun --data D     # airbench94 beside its port, ~2.5 h

Run from the checkout's root (`-m` puts it on the path, and the spawned workers inherit
it); `--data` may be left out when $CNN_CIFAR_DATA names the data. Prints a table and writes
results/bench-<timestamp>.json. Exits 1 when any part failed (a worker that died, a fit or
a search that failed), after printing what the others measured. --smoke checks that every
part runs, not what it measures: its budgets are far too small for the figures to mean
anything, so the table shows "smoke" where a target's verdict would be, and the JSON goes
to a temporary folder as bench-smoke-<timestamp>.json.
Parts:

throughput  For each model (two_conv_hidden, final): training images/s of the project's
            estimator (CNNClassifier from the config, as `cnn-cifar cv` trains it) and of
            a tutorial-style loop (keras.Sequential, float32 pixels / 255, one-hot labels,
            model.fit(batch_size=32, validation_split=0.2), every default left alone).
            Each side lives in its own worker process (so each keeps its own TensorFlow
            settings) and they ALTERNATE: baseline, project, project, baseline, ... one
            fresh fit of `--epochs` epochs each; the first epoch (tracing) is not timed.
            images/s = training rows / epoch wall time, the validation pass included on
            both sides; the figure is the median over all timed epochs. FLOP/s are
            3 x 2 x multiply-accumulates per image (shapes.infer) x images/s, shown as a
            fraction of the machine's peak in the precision the side computes in: the
            framework's own matmul (TensorFlow/oneDNN, 2048x2048 in a tf.function, in
            float32 and in bfloat16), measured in a worker of its own before every round
            (best sample). numpy's float32 GEMM (OpenBLAS) is measured beside it and
            labelled as such: here it reaches about half of TensorFlow's float32 rate.
memory      20 sequential fits of a small model in one fresh process: VmRSS after each fit
            (/proc/self/status), growth first -> last, and the peak (VmHWM).
search      Time to quality on a fixed stratified subset: sklearn's RandomizedSearchCV over
            CNNClassifier at the tutorial's arithmetic (float32, one step per call, n_jobs=1)
            against `cnn-cifar search --jobs 2` with the project's defaults and the config's
            strategy (others with --search-strategies). Same candidates, same folds, the
            tutorial's protocol per fit (validation split, early stopping) with the epochs
            capped; the budgets (subset, n_iter, folds, epochs) are printed with the figures.
            Wall times include starting the process and loading the data. Time to quality:
            RandomizedSearchCV answers when it ends; for the project, the moment (from its
            fits/ journal) a candidate had all its folds with a mean within 1 point of the
            plain search's best.
speedrun    airbench94 itself against configs/speedrun.yaml, its port (needs the reference
            extra: pip install -e ".[reference]"; without it the part says so and is
            skipped). The reference is the `airbench` package's own training, run on the
            CPU in float32 by benchmarks/reference.py, which changes only device,
            precision and data feeding (its docstring lists each change); --device cuda
            runs it on the GPU in float16, as published, and the port then trains where
            its Keras backend puts it (KERAS_BACKEND=torch takes the GPU). Both sides
            train on the same images (--data, all 50,000; --quick and --smoke a subset),
            each with its own recipe (airbench 9.9 epochs, the port 10), each training in
            a fresh process, the sides alternated seed by seed (--seeds, default 0,1).
            Per side: test accuracy with its TTA and without (mean +/- sd over seeds),
            training seconds (the whole training call: network built, whitening fitted,
            every step), images/s and images per CPU-second over that call and over the
            steady epochs (median epoch after the first); then port / reference.

Slices and subsets are the package's `--subset N` draw (data.sources.load_dataset(subset=N):
stratified, seeded), so a bench slice holds the images `cnn-cifar ... --subset N` trains on.
The machine may be shared: the load average is recorded before and after each part, and
only ratios measured within one run should be compared.

The modules, from the bottom up:

    settings    the parts, the models, the budgets of each size, the targets, the checkout
    measure     the instruments: medians, load average, memory, epoch clocks, the machine's
                peak rates and identity, the versions, the progress log
    workers     the worker processes: spawn, ask, stop, the child's entry point, the
                framework's start-up in a worker, the `--subset` slice
    tables      the report's text
    throughput, memory, search, speedrun    one part each: its workers and its figures
    reference   airbench94 itself (`python -m benchmarks.reference`), what speedrun calls
    cli         the command line, the run of the parts, the JSON's place
"""

"""What the commands run: train, infer (predict), run an experiment, compare emulators, clean a training set."""

"""Hyperparameter tuning per arm (or arm x fraction) on the validation split, before the sweep.

`units` says what is tuned and how chosen values enter a cell's settings (pure data, no engine imported);
`trial` trains one trial in a worker on train and validation indices only; `optuna_engine` and
`keras_tuner_engine` keep each engine's resumable state in the results directory; `phase` runs the trials of
every unit through the worker pool and records the chosen values in the store.
"""

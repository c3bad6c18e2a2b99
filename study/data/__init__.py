"""Datasets: load a source (MedMNIST, image folder, CSV manifest, synthetic), split it, draw training subsets.

`sources.load_dataset` decodes and caches images, `splits.ensure_split` fixes train/val/test, and
`splits.training_subsets` draws the nested, stratified, group-aware subsets the grid's fractions train on.
"""

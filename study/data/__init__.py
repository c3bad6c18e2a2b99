"""Datasets: load a source (MedMNIST, image folder, CSV manifest, DICOM, synthetic), split it, draw training subsets.

`sources.load_dataset` decodes and caches images, `splits.ensure_split` fixes train/val/test (`splits.seed_split`
gives each seed its own with dataset.resplit), and `splits.training_subsets` draws the nested, stratified,
group-aware subsets the grid's fractions train on.
"""

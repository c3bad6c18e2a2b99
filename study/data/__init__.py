"""Datasets: load a source (MedMNIST, image folder, CSV manifest, DICOM, synthetic), split it, draw training subsets.

Each source is a `source.DataSource` registered by name in `registry.SOURCES`; `sources.load_dataset` opens the
one a protocol names and decodes and caches its images, `splits.ensure_split` fixes train/val/test (`splits.seed_split`
gives each seed its own with dataset.resplit), and `splits.training_subsets` draws the nested, stratified,
group-aware subsets the grid's fractions train on.
"""

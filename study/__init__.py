"""study: a data-efficiency study harness for transfer learning in medical image classification."""

__version__ = "0.1.0"

"""Rendering the report document: Markdown, self-contained HTML, LaTeX tables, and the files on disk."""

"""Training: recipes (TOML -> frozen dataclasses), the loop, checkpoints, DDP and export.

Import the submodules directly (``codec.train.loop.train``, ``codec.train.recipe.load_recipe``,
``codec.train.export.export_model``); this package imports nothing heavy by itself.
"""

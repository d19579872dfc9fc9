"""Evaluation: objective metrics (:mod:`.metrics`), classical anchor codecs (:mod:`.anchors`) and
rate-quality reports (:mod:`.report`). Import the submodules directly; this package imports nothing.
"""

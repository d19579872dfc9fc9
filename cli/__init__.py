"""The ``diveq-codec`` command line (typer). Entry point: :data:`cli.main.app`.

Modules here import heavy libraries (torch, ``codec.*``) inside their command functions only, so that
``diveq-codec --help`` starts fast.
"""

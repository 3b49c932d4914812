"""``python -m lit_gans.serve ckpt=PATH``: translate images over HTTP with a trained checkpoint.

``app`` builds the LitServe server (web page, upload checks, ``/info``), ``api`` is the batched inference,
``requests`` parses and validates one request, ``loadtest`` measures a running server (``python -m
lit_gans.serve.loadtest``). See docs/serve.md.
"""

"""The TimescaleDB WASM server: ``server.mjs`` with its npm manifest and lock file.

Its packages are installed by ``make setup`` (``npm ci --legacy-peer-deps`` in this folder).
"""

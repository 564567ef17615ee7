"""The benchmarks behind ``tutorstream bench <what>``, one module each.

Every benchmark prints a table, writes its report as JSON under ``bench-results/`` and compares
its figure with a baseline measured in the same run (:mod:`tutorstream.bench.report`). The
modules are imported only by the command that runs them: :mod:`tutorstream.bench.api` needs
httpx, which comes with the ``dev`` extra, not the core install.

- :mod:`~tutorstream.bench.normalize`: inbound records normalised per second per core;
- :mod:`~tutorstream.bench.inference`: learner-model throughput, ONNX Runtime against PyTorch;
- :mod:`~tutorstream.bench.api`: statements/s through the API and live-feed latency;
- :mod:`~tutorstream.bench.pipeline`: end-to-end throughput and event-to-intervention latency;
- :mod:`~tutorstream.bench.replay`: replay in export and rebuild modes;
- :mod:`~tutorstream.bench.boards`: every board query on a year of a class.

Inbound records in each format come from :mod:`tutorstream.bench.records`; simulated classes
from :mod:`tutorstream.cohort`.
"""

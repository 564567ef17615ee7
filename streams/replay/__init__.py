"""Replay a slice of a topic's history: export it, rebuild the store, rescore, or re-drive DLQ.

The modules, in the order a replay uses them:

- :mod:`~streams.replay.plan`: what to read (a selection) resolved into per-partition ranges;
- :mod:`~streams.replay.checkpoint`: where a replay stands, kept on disk after durable batches;
- :mod:`~streams.replay.reader`: the run, reading batches and handing them to an output;
- :mod:`~streams.replay.outputs`: the output interface and the exports (JSON lines, Parquet);
- :mod:`~streams.replay.rebuild`: the pipeline into the store, or a rescore into a shadow
  schema;
- :mod:`~streams.replay.dlq`: dead letters that pass the current normaliser, produced back;
- :mod:`~streams.replay.pool`: a rebuild or rescore spread over several processes;
- :mod:`~streams.replay.diff`: how a rescore differs from the live tables.

A replay runs offline, beside the live workers: nothing here imports the Faust worker
(:mod:`streams.app`) or Faust, and a test holds it to that.
"""

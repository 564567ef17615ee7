"""What every tutorstream component shares: settings, Kafka client defaults, partitioning.

The bottom layer: it imports nothing of tutorstream's own, so ``schemas``, ``streams``, ``api``,
``inference`` and the wiring in ``tutorstream`` may all import it.
"""

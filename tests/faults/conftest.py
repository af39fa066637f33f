"""The fault suite: quick cases run in ``make test``; cases marked ``faults`` (long: many kills, server
restarts, the property-based model) run in ``make faults``, which CI also runs. Each case records its
figure with :func:`tests.faults.figures.record` after its assertions hold."""

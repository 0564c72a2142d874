""""Who's Sherlock Holmes?" benchmark (entry point: ``python bench/bench_sherlock.py``), one job a module:

- ``config``: paths, the story rules, ``SherlockConfig`` and the unlearning runs it names;
- ``world``: the data files, subsampling, the text world and its held-out documents;
- ``probes``: the probe file; ``familiarity``: completion and probability familiarity on the probes;
- ``measure``: every measurement of one model;
- ``state``: timings kept across invocations (``RUN/bench_state.json``) and a stopwatch;
- ``training``: the ``full`` and ``retain`` models; ``unlearning``: the method runs;
- ``run``: the whole benchmark and its result; ``report``: ``sherlock.md`` and ``sherlock.json``.
"""

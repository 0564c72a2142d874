"""RL dememorization (Kassem et al., "Preserving Privacy Through Dememorization").

- :mod:`obliviate.dememorize.data`: forget documents as (prefix, suffix) token windows.
- :mod:`obliviate.dememorize.reward`: reward = -similarity (ROUGE-L or BLEU) to the true suffix.
- :mod:`obliviate.dememorize.train`: TRL GRPO / RLOO with a KL penalty to the starting model.
- :mod:`obliviate.dememorize.evaluate`: exact-suffix extraction, greedy similarity, retain perplexity.
"""

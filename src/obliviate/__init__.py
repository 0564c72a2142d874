"""obliviate: machine unlearning for language models.

Post-hoc unlearning (WHP, gradient ascent/difference, NPO, SimNPO, RMU, ...), native
unlearning with per-source sink neurons, and an evaluation harness that grades every
method against a model retrained without the forgotten data.
"""

__version__ = "0.1.0"

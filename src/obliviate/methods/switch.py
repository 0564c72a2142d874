"""Native unlearning: switch the forget sources' sinks off in a sink model (no weight changes).

The result's ``report`` holds ``switch_seconds`` (validating the ids, setting the mode and
switching the sinks off; router fitting excluded) and ``forgotten`` (the split's source ids,
now switched off).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from obliviate.errors import UserError
from obliviate.methods.registry import UnlearningMethod, UnlearnResult, UnlearnTask, register
from obliviate.models.sinks import is_sink_model, texts_by_source

log = logging.getLogger(__name__)


@dataclass
class SwitchConfig:
    inference_mode: str = "route"        # route | backbone | all (mode saved with the unlearned model)
    # route mode, query nearest to a forgotten source: all (every surviving sink) | backbone | nearest;
    # unless the nearest surviving source is at least route_shared_ratio as similar (shared knowledge)
    route_forgotten: str = "all"
    route_shared_ratio: float = 0.75
    fit_router: bool = True              # fit the router from the task's documents if the model has none


@register
class SwitchMethod(UnlearningMethod):
    name = "switch"
    config_class = SwitchConfig
    summary = "native sinks: switch the forget sources' sinks off (milliseconds, reversible, no weights changed)"

    def unlearn(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        if not is_sink_model(model):
            raise UserError(
                f"method 'switch' needs a sink model (trained with --arch sinks); got {type(model).__name__}"
            )
        if self.config.inference_mode == "on":
            raise UserError("method 'switch' sets a mode for every query: use route, backbone or all, not 'on'")
        if not task.forget_sources:
            raise UserError(f"split {task.forget!r} has no sources to forget")
        if model.known_sources is None and self.config.fit_router:
            texts = texts_by_source([*task.forget_docs, *task.retain_docs])
            if texts:
                model.fit_router(texts, tokenizer)
        started = time.perf_counter()
        ids = model.check_sources(task.forget_sources)   # unknown ids: UserError, nothing changed
        model.set_inference_mode(self.config.inference_mode, route_forgotten=self.config.route_forgotten,
                                 route_shared_ratio=self.config.route_shared_ratio)
        model.forget(ids)
        seconds = time.perf_counter() - started
        log.info("switched off %d sources in %.3f ms", len(task.forget_sources), 1e3 * seconds)
        return UnlearnResult(model, steps=0, report={"switch_seconds": seconds, "forgotten": ids})

"""Content-addressed request cache: a request's key is the hash of everything that decides its answer
(backend, model, template id and hash, sampling parameters, seed, the rendered prompt).

Each answer is one small JSON file named by its key, written atomically the moment its batch finishes,
so a killed run loses at most the batch in flight and a rerun generates nothing twice. Keys never
collide across workers, so any number of Beam workers share one cache directory without locks.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from assay.groundwork.atomic import write_json_atomic
from assay.synth.backends.base import Completion, Messages
from assay.synth.config import Sampling


def request_key(backend: str, model: str, template_id: str, template_hash: str, sampling: Sampling, seed: int,
                prompt: Messages | str) -> str:
    params = sampling.to_dict()
    params.pop("seed")
    blob = json.dumps({"backend": backend, "model": model, "template": [template_id, template_hash],
                       "sampling": params, "seed": seed, "input": prompt}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, directory: str | None):
        self.directory = directory

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.directory:
            return None
        try:
            with open(self._path(key), encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):  # unreadable entry: regenerate and overwrite it
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if not self.directory:
            return
        write_json_atomic(value, self._path(key), indent=None, ensure_ascii=False)

    def get_completion(self, key: str) -> Completion | None:
        value = self.get(key)
        return Completion(**value) if value else None

    def put_completion(self, key: str, completion: Completion) -> None:
        self.put(key, completion.__dict__)

    def __len__(self) -> int:
        if not self.directory or not os.path.isdir(self.directory):
            return 0
        return sum(1 for _, _, files in os.walk(self.directory) for f in files if f.endswith(".json"))

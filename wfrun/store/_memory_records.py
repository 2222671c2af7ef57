"""What the memory store keeps beside runs: the URL key, the manifest cache, start tokens and
schedule states (a mixin of `MemoryStore`, over the same backing)."""

from __future__ import annotations

import json
import os
from typing import Any

from wfrun.errors import ConflictError, UsageError
from wfrun.store._manifest_cache import check_digest
from wfrun.store._manifest_cache import encode as encode_manifest
from wfrun.store._memory_backing import MemoryBacking
from wfrun.store._schedule_state import check_workflow_name, state_json
from wfrun.store.abc import Store, token_with_hash

KEY_BYTES = 32  # the least a URL signing key has


class MemoryRecords(Store):
    """The key, cache, token and schedule tables of a memory store."""

    backing: MemoryBacking

    # -- the URL key and the manifest cache ------------------------------------------------------

    def secret_key(self) -> bytes:
        with self.backing.mutex:
            if self.backing.key is None:
                self.backing.key, self.backing.written = os.urandom(32), True
            return self.backing.key

    def cached_manifest(self, digest: str) -> Any:
        check_digest(digest)
        with self.backing.mutex:
            text = self.backing.manifests.get(digest)
        return None if text is None else json.loads(text)

    def cache_manifest(self, digest: str, document: Any) -> None:
        check_digest(digest)
        body = encode_manifest(document)
        if body is not None:
            with self.backing.mutex:
                self.backing.manifests.setdefault(digest, body.decode())

    def stored_secret_key(self) -> bytes | None:
        with self.backing.mutex:
            return self.backing.key

    def adopt_secret_key(self, key: bytes) -> bool:
        if len(key) < KEY_BYTES:
            raise UsageError(f"a URL signing key of {len(key)} byte(s) cannot be adopted: it "
                             f"needs at least {KEY_BYTES}")
        with self.backing.mutex:
            if self.backing.key is None:
                self.backing.key, self.backing.written = bytes(key), True
                return True
            if self.backing.key != key:
                raise ConflictError(
                    "the memory store's URL signing key differs from the one being copied: "
                    "resume and cancel links signed by either would stop working; copy into a "
                    "store that has no key yet or the same one")
            return False

    # -- start tokens -----------------------------------------------------------------------

    def save_token(self, record: dict[str, Any]) -> None:
        with self.backing.mutex:
            if record["name"] in self.backing.tokens:
                raise ConflictError(f"a token named {record['name']!r} exists already")
            self.backing.tokens[record["name"]] = dict(record)
            self.backing.written = True

    def find_token(self, token_hash: str) -> dict[str, Any] | None:
        return token_with_hash(self.tokens(), token_hash)

    def tokens(self) -> list[dict[str, Any]]:
        with self.backing.mutex:
            return [dict(record) for record in self.backing.tokens.values()]

    def revoke_token(self, name: str, at: str) -> dict[str, Any] | None:
        with self.backing.mutex:
            record = self.backing.tokens.get(name)
            if record is None:
                return None
            if not record.get("revoked"):
                record["revoked"], record["revoked_at"] = True, at
            return dict(record)

    def schedule_workflows(self) -> list[str]:
        with self.backing.mutex:
            return sorted(self.backing.schedules)

    # -- schedules ---------------------------------------------------------------------------

    def schedule_state(self, workflow: str) -> tuple[dict[str, Any] | None, int]:
        check_workflow_name(workflow)
        with self.backing.mutex:
            kept = self.backing.schedules.get(workflow)
        if kept is None:
            return None, 0
        return json.loads(kept[1]), kept[0]

    def save_schedule_state(self, workflow: str, state: dict[str, Any],
                            expected_revision: int) -> int:
        check_workflow_name(workflow)
        text = state_json(workflow, state)
        with self.backing.mutex:
            revision = self.backing.schedules.get(workflow, (0, ""))[0]
            if revision != expected_revision:
                raise ConflictError(
                    f"the schedule state of workflow '{workflow}' changed meanwhile (revision "
                    f"{revision}, expected {expected_revision}); try again")
            self.backing.schedules[workflow] = (revision + 1, text)
            self.backing.written = True
        return expected_revision + 1



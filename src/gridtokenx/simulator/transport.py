"""How spooled readings reach the gateway: HTTP one by one, HTTP batches (a head-end posting the
whole fleet's interval at once), or MQTT QoS 1 on each meter's topic.

Every transport answers, per spooled reading, one `Answer`: stored (accepted or duplicate),
rejected (a 4xx with its code: final, never retried), or failed (network error, 5xx, 429, no
result in time: the reading stays in the spool and is resent, byte for byte, later). Within one
send, transient failures are retried with exponential backoff and full jitter, honouring a 429's
Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import aiomqtt
import httpx
import orjson

from gridtokenx.simulator.fleetfile import Spooled
from gridtokenx.simulator.wire import Route

STORED = ("accepted", "duplicate")


@dataclass(frozen=True)
class Answer:
    status: str  # accepted | duplicate | rejected | failed
    code: str | None = None
    flags: tuple[str, ...] = ()
    seconds: float | None = None  # the gateway's answer time for the request that carried it
    retries: int = 0
    mintable_wh: int = 0

    @property
    def final(self) -> bool:
        return self.status != "failed"


@dataclass
class RetryPolicy:
    attempts: int = 4
    base_s: float = 0.2
    cap_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with full jitter; at least the server's Retry-After."""
        backoff = self.rng.uniform(0, min(self.cap_s, self.base_s * 2**attempt))
        return max(backoff, min(retry_after or 0.0, self.cap_s))


class Transport(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(self, items: Sequence[Spooled]) -> dict[int, Answer]: ...


def transient(status: int) -> bool:
    return status == 429 or status == 408 or status >= 500


def _item_answer(item: dict[str, Any]) -> Answer:
    status = str(item.get("status", "rejected"))
    flags = tuple(item.get("flags") or ())
    return Answer(status, item.get("code"), flags, mintable_wh=int(item.get("mintable_wh") or 0))


def single_answer(response: httpx.Response) -> Answer:
    """A single-reading route's answer: native (`status`) or compatibility (`duplicate`) body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Answer("rejected" if response.status_code >= 400 else "failed", f"HTTP_{response.status_code}")
    if response.status_code >= 400:
        return Answer("rejected", str(body.get("error", {}).get("code", response.status_code)))
    if "status" in body:
        return _item_answer(body)
    return Answer("duplicate" if body.get("duplicate") else "accepted", None, tuple(body.get("flags") or ()))


class HttpTransport:
    """HTTP single or batch; `credential(serial)` gives the X-API-Key for a meter's readings.
    With several gateway URLs (processes behind no balancer) requests go round-robin."""

    def __init__(
        self,
        base_urls: Sequence[str],
        route: Route,
        credential: Callable[[str], str],
        *,
        batch: bool = False,
        batch_credential: str | None = None,
        batch_size: int = 1000,
        concurrency: int = 32,
        policy: RetryPolicy | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_urls = list(base_urls)
        self.turn = 0
        self.route = route
        self.credential = credential
        self.batch = batch
        self.batch_credential = batch_credential
        self.batch_size = batch_size
        self.limit = asyncio.Semaphore(concurrency)
        self.policy = policy or RetryPolicy()
        self.timeout_s = timeout_s
        self.clients: list[httpx.AsyncClient] = []

    async def start(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.clients = [
            httpx.AsyncClient(base_url=url, timeout=self.timeout_s, limits=limits) for url in self.base_urls
        ]

    async def stop(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def _post(
        self, path: str, body: bytes, key: str
    ) -> tuple[httpx.Response | None, float | None, int]:
        """POST with retries of transient failures: the final response (None when every attempt
        failed), its answer time, and how many retries it took."""
        self.turn += 1
        client = self.clients[self.turn % len(self.clients)]
        headers = {"content-type": "application/json", "x-api-key": key}
        for attempt in range(self.policy.attempts):
            retry_after = None
            try:
                async with self.limit:
                    started = time.perf_counter()
                    answer = await client.post(path, content=body, headers=headers)
                    seconds = time.perf_counter() - started
            except httpx.HTTPError:
                pass
            else:
                if not transient(answer.status_code):
                    return answer, seconds, attempt
                with contextlib.suppress(ValueError):
                    retry_after = float(answer.headers.get("retry-after", ""))
            if attempt + 1 < self.policy.attempts:
                await asyncio.sleep(self.policy.delay(attempt, retry_after))
        return None, None, self.policy.attempts - 1

    async def send(self, items: Sequence[Spooled]) -> dict[int, Answer]:
        """Meters in parallel, each meter's readings in interval order, as a real meter sends them
        (the gateway judges a reading against the ones before it)."""
        if self.batch:
            return await self._send_batches(items)
        by_meter: dict[str, list[Spooled]] = defaultdict(list)
        for item in items:
            by_meter[item.serial].append(item)
        answers: dict[int, Answer] = {}

        async def meter(queue: list[Spooled]) -> None:
            unreachable = False
            for item in sorted(queue, key=lambda i: i.interval_start):
                # after a failure the later readings wait too, so they never overtake it
                answers[item.id] = Answer("failed") if unreachable else await self._send_one(item)
                unreachable = answers[item.id].status == "failed"

        await asyncio.gather(*(meter(queue) for queue in by_meter.values()))
        return answers

    async def _send_one(self, item: Spooled) -> Answer:
        path = self.route.single(item.serial)
        response, seconds, retries = await self._post(path, item.body, self.credential(item.serial))
        if response is None:
            return Answer("failed", retries=retries)
        return replace(single_answer(response), seconds=seconds, retries=retries)

    async def _send_batches(self, items: Sequence[Spooled]) -> dict[int, Answer]:
        """One request per interval (the head-end's batch), split at the gateway's batch limit."""
        groups: dict[int, list[Spooled]] = defaultdict(list)
        for item in items:
            groups[item.interval_start].append(item)
        answers: dict[int, Answer] = {}
        for start in sorted(groups):  # interval after interval; one interval's chunks in parallel
            chunks = [
                groups[start][i : i + self.batch_size] for i in range(0, len(groups[start]), self.batch_size)
            ]
            if answers and all(a.status == "failed" for a in answers.values()):
                results = [[Answer("failed")] * len(c) for c in chunks]  # the gateway is away
            else:
                results = await asyncio.gather(*(self._send_chunk(c) for c in chunks))
            for chunk, result in zip(chunks, results, strict=True):
                answers.update(zip((item.id for item in chunk), result, strict=True))
        return answers

    async def _send_chunk(self, chunk: list[Spooled]) -> list[Answer]:
        key = self.batch_credential or self.credential(chunk[0].serial)
        body = self.route.frame([i.body for i in chunk])
        response, seconds, retries = await self._post(self.route.batch, body, key)
        if response is None:
            return [Answer("failed", retries=retries)] * len(chunk)
        if response.status_code >= 400:
            return [replace(single_answer(response), seconds=seconds, retries=retries)] * len(chunk)
        try:
            results = response.json().get("results", [])
        except (ValueError, AttributeError):
            results = []
        if len(results) != len(chunk):
            return [Answer("failed", seconds=seconds, retries=retries)] * len(chunk)
        return [replace(_item_answer(r), seconds=seconds, retries=retries) for r in results]


class MqttTransport:
    """QoS 1 publishes to `<prefix>/meters/<serial>/readings`; the gateway's verdicts come back on
    `<prefix>/meters/<serial>/results` only after its commit, so a reading leaves the spool only
    once it is stored (a PUBACK only means the broker has it, and a broker with no gateway
    subscribed drops it)."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        *,
        result_timeout_s: float = 10.0,
        concurrency: int = 100,
    ) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.result_timeout_s = result_timeout_s
        self.limit = asyncio.Semaphore(concurrency)
        self.client: aiomqtt.Client | None = None
        self.waiting: dict[str, deque[tuple[int, asyncio.Future[Answer]]]] = defaultdict(deque)
        self.listener: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self.listener = asyncio.create_task(self._listen())
        await asyncio.wait_for(self.ready.wait(), 30)

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self.listener

    async def _listen(self) -> None:
        """Keep a connection (reconnecting after a broker outage) and route results to waiters."""
        identifier = f"gtx-sim-{uuid.uuid4().hex[:12]}"
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=identifier, keepalive=30
                ) as client:
                    client.pending_calls_threshold = 1_000_000
                    await client.subscribe(f"{self.prefix}/meters/+/results", qos=1)
                    self.client = client
                    self.ready.set()
                    async for message in client.messages:
                        self._on_result(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(1.0)

    def _on_result(self, topic: str, payload: bytes) -> None:
        serial = topic.split("/")[-2]
        queue = self.waiting.get(serial)
        if not queue:
            return
        for result in orjson.loads(payload).get("results", []):
            answer = _item_answer(result)
            start = _epoch(str(result.get("interval_start") or ""))
            index = 0
            if start is not None:  # stored verdicts name their interval: match it
                for i, (interval_start, _) in enumerate(queue):
                    if interval_start == start:
                        index = i
                        break
            if index < len(queue):
                _, future = queue[index]
                del queue[index]
                if not future.done():
                    future.set_result(answer)

    async def send(self, items: Sequence[Spooled]) -> dict[int, Answer]:
        answers = await asyncio.gather(*(self.publish(i.serial, i.interval_start, i.body) for i in items))
        return dict(zip((item.id for item in items), answers, strict=True))

    async def publish(self, serial: str, interval_start: int, body: bytes) -> Answer:
        """Publish one message on `serial`'s readings topic and wait for its verdict ("failed"
        when none comes in time). The topic need not be the reading's own meter (the attacks)."""
        client = self.client
        if client is None:
            return Answer("failed")
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        entry = (interval_start, future)
        self.waiting[serial].append(entry)
        started = time.perf_counter()
        try:
            async with self.limit:
                await client.publish(f"{self.prefix}/meters/{serial}/readings", body, qos=1)
            answer = await asyncio.wait_for(future, self.result_timeout_s)
        except (TimeoutError, aiomqtt.MqttError):
            with contextlib.suppress(ValueError):
                self.waiting[serial].remove(entry)
            return Answer("failed")
        return replace(answer, seconds=time.perf_counter() - started)


def _epoch(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())

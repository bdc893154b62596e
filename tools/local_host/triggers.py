"""The local host's non-HTTP triggers, run on their own as the real Functions host runs them:

* timer functions on their NCRONTAB schedule (six fields, seconds first; `%SETTING%` resolved from the
  environment; UTC), each function one invocation at a time (the real host's singleton);
* queue-triggered functions by polling the queue named in the trigger on the Storage account of its
  `connection` setting (a connection string: Azurite locally), with host.json `extensions.queues`:
  `batchSize` messages at a time (another batch once no more than `newBatchThreshold` are in flight),
  polling backed off exponentially from 100 ms to `maxPollingInterval`
  while the queue is empty, a message hidden for 10 minutes while its function runs, deleted when it
  succeeds; on failure hidden for `visibilityTimeout`, and after `maxDequeueCount` dequeues moved to
  `<queue>-poison` (defaults as the real host's: 16, 1 minute, 0 s, 5). Messages are base64, as the real host
  expects by default.

Started by `python -m tools.local_host` (cli.py), not by in-process LocalHost instances of the unit tests; the
background-job tests and benchmarks drive a `Triggers` of their own (`poll_once`).
"""
from __future__ import annotations

import base64
import calendar
import datetime as dt
import logging
import os
import re
import threading
from typing import Any

import azure.functions.queue as queue_types
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.decorators.timer import TimerTrigger
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient

from tools.local_host.settings import read_json_file

log = logging.getLogger("gatehouse.local_host")
IN_FLIGHT_VISIBILITY = 600


# ---- NCRONTAB --------------------------------------------------------------------------------------------------

_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))  # second minute hour day month day-of-week
_NAMES = {4: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
          5: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]}


def _field(text: str, index: int) -> set[int]:
    low, high = _RANGES[index]
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            start, end = (_value(p, index) for p in part.split("-", 1))
        else:
            start = _value(part, index)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"{text!r} is out of range")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, index: int) -> int:
    names = _NAMES.get(index, [])
    if text.upper()[:3] in names:
        return names.index(text.upper()[:3]) + (1 if index == 4 else 0)
    number = int(text)
    return 0 if index == 5 and number == 7 else number


class Schedule:
    """An NCRONTAB expression: `{second} {minute} {hour} {day} {month} {day-of-week}`."""

    def __init__(self, expression: str):
        fields = expression.split()
        if len(fields) != 6:
            raise ValueError(f"NCRONTAB {expression!r} must have six fields (seconds first)")
        self.expression = expression
        self.fields = [_field(text, index) for index, text in enumerate(fields)]
        self.any_day, self.any_weekday = fields[3] in ("*", "?"), fields[5] in ("*", "?")

    def _day_matches(self, day: dt.datetime) -> bool:
        in_month = day.day in self.fields[3]
        in_week = (day.weekday() + 1) % 7 in self.fields[5]
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week  # cron's rule when both are restricted

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first matching second strictly after `moment` (UTC)."""
        candidate = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
        for _ in range(366 * 24 * 60 * 60):
            if candidate.month not in self.fields[4]:
                days = calendar.monthrange(candidate.year, candidate.month)[1]
                candidate = (candidate.replace(day=1, hour=0, minute=0, second=0) + dt.timedelta(days=days))
                continue
            if not self._day_matches(candidate):
                candidate = candidate.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
                continue
            if candidate.hour not in self.fields[2]:
                candidate = candidate.replace(minute=0, second=0) + dt.timedelta(hours=1)
                continue
            if candidate.minute not in self.fields[1]:
                candidate = candidate.replace(second=0) + dt.timedelta(minutes=1)
                continue
            if candidate.second not in self.fields[0]:
                candidate += dt.timedelta(seconds=1)
                continue
            return candidate
        raise ValueError(f"NCRONTAB {self.expression!r} never fires")


def resolve(text: str) -> str:
    """`%NAME%` placeholders from the environment, as the host resolves binding expressions."""
    return re.sub(r"%([A-Za-z0-9_]+)%", lambda m: os.environ.get(m.group(1), ""), text)


# ---- host.json -------------------------------------------------------------------------------------------------

def _timespan_seconds(value: Any, default: float) -> float:
    if not isinstance(value, str):
        return default
    parts = value.split(":")
    try:
        hours, minutes, seconds = (float(p) for p in parts[-3:]) if len(parts) >= 3 else (0, 0, float(parts[-1]))
    except ValueError:
        return default
    return hours * 3600 + minutes * 60 + seconds


def queue_options(app_dir: str) -> dict[str, float]:
    """The queue trigger's options from `host.json` (`extensions.queues`), the host's defaults where unset."""
    try:
        queues = (read_json_file(os.path.join(app_dir, "host.json")).get("extensions") or {}).get("queues") or {}
    except (OSError, ValueError):
        queues = {}
    batch_size = int(queues.get("batchSize", 16))
    return {"batch_size": batch_size, "new_batch_threshold": int(queues.get("newBatchThreshold", batch_size // 2)),
            "max_polling_interval": _timespan_seconds(queues.get("maxPollingInterval"), 60.0),
            "visibility_timeout": _timespan_seconds(queues.get("visibilityTimeout"), 0.0),
            "max_dequeue_count": int(queues.get("maxDequeueCount", 5))}


# ---- the runners --------------------------------------------------------------------------------------------------

class Triggers:
    """Runs a LocalHost's timer and queue functions until `stop()`."""

    def __init__(self, host):
        self.worker = host.worker  # a LocalHost's: it runs the functions
        self.options = queue_options(host.app_dir)
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for function in self.worker.functions.values():
            binding = function.trigger.get_binding_name()
            if isinstance(function.trigger, TimerTrigger):
                target = self._timer
            elif binding == "queueTrigger":
                target = self._queue
            else:
                continue
            thread = threading.Thread(target=target, args=(function,), name=f"trigger-{function.name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()

    def _timer(self, function) -> None:
        try:
            schedule = Schedule(resolve(function.trigger.schedule))
        except ValueError as error:
            log.error("timer '%s' will not run: %s", function.name, error)
            return
        log.info("timer '%s' runs on '%s' (UTC)", function.name, schedule.expression)
        while not self.stopping.is_set():
            due = schedule.next_after(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
            wait = (due - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).total_seconds()
            if self.stopping.wait(max(0.0, wait)):
                return
            try:
                self.worker.run(function, TimerRequest(past_due=False)).result()
            except Exception:  # noqa: BLE001 - logged by the host; the next occurrence runs anyway
                pass

    def queue_clients(self, function):
        """(queue, poison queue) clients of a queue function, None when its connection is not a connection
        string."""
        trigger = function.trigger
        connection = os.environ.get(trigger.connection or "AzureWebJobsStorage", "")
        if not connection or "QueueEndpoint" not in connection and "UseDevelopmentStorage" not in connection:
            log.warning("queue function '%s' will not run: setting %s holds no queue connection string",
                        function.name, trigger.connection)
            return None
        name = resolve(trigger.queue_name)
        return (QueueClient.from_connection_string(connection, name),
                QueueClient.from_connection_string(connection, f"{name}-poison"))

    def _queue(self, function) -> None:
        clients = self.queue_clients(function)
        if clients is None:
            return
        queue, poison = clients
        interval = 0.1
        in_flight = threading.Semaphore(0)  # released as each invocation ends
        running = 0
        log.info("queue function '%s' polls '%s'", function.name, queue.queue_name)
        while not self.stopping.is_set():
            # As the host: another batch only while no more than newBatchThreshold messages are in flight, so
            # one slow message never holds up the ones behind it.
            while in_flight.acquire(blocking=False):
                running -= 1
            if running > self.options["new_batch_threshold"]:
                if in_flight.acquire(timeout=0.2):
                    running -= 1
                continue
            messages = self._receive(queue)
            if not messages:
                interval = min(self.options["max_polling_interval"], interval * 2)
                self.stopping.wait(interval)
                continue
            interval = 0.1
            for message in messages:
                running += 1
                future = self.worker.run(function, _message(message))
                future.add_done_callback(
                    lambda done, message=message: (self._settle(done, queue, poison, message), in_flight.release()))

    def poll_once(self, function, queue, poison) -> int:
        """One batch, waited for: receive up to `batchSize` messages, run the function on each (concurrently),
        delete the ones that succeeded and release or poison the others. Answers how many it received."""
        messages = self._receive(queue)
        futures = [(m, self.worker.run(function, _message(m))) for m in messages]
        for message, future in futures:
            self._settle(future, queue, poison, message)
        return len(messages)

    def _receive(self, queue) -> list:
        try:
            return list(queue.receive_messages(max_messages=min(32, self.options["batch_size"]),
                                               visibility_timeout=IN_FLIGHT_VISIBILITY))
        except ResourceNotFoundError:
            try:
                queue.create_queue()
            except Exception:  # noqa: BLE001 - created by someone else meanwhile
                pass
        except Exception as error:  # noqa: BLE001 - storage down: keep polling, as the host does
            log.warning("queue '%s' cannot be read: %s", queue.queue_name, type(error).__name__)
        return []

    def _settle(self, future, queue, poison, message) -> None:
        try:
            future.result()
            queue.delete_message(message)
        except Exception:  # noqa: BLE001 - the function failed (logged by the host) or storage did
            self._failed(queue, poison, message)

    def _failed(self, queue, poison, message) -> None:
        try:
            if message.dequeue_count >= self.options["max_dequeue_count"]:
                try:
                    poison.create_queue()
                except ResourceExistsError:
                    pass
                poison.send_message(message.content)  # as received: still base64
                queue.delete_message(message)
                log.warning("message %s moved to the poison queue after %d dequeues", message.id,
                            message.dequeue_count)
            else:
                queue.update_message(message, visibility_timeout=int(self.options["visibility_timeout"]))
        except Exception as error:  # noqa: BLE001 - it becomes visible again when its in-flight time ends
            log.warning("could not release message %s: %s", message.id, type(error).__name__)


def _message(message):
    body = message.content
    if isinstance(body, str):
        try:
            body = base64.b64decode(body, validate=True)
        except ValueError:
            body = body.encode()
    return queue_types.QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                                    pop_receipt=message.pop_receipt, insertion_time=message.inserted_on,
                                    expiration_time=message.expires_on, time_next_visible=message.next_visible_on)

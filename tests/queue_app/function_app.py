"""A Function App for the local host's queue and timer tests: a queue function that records each message
(and fails on "fail"), and a timer that ticks every second; both write lines to $TRIGGER_LOG."""
import json
import os

import azure.functions as func

app = func.FunctionApp()


def _note(**fields) -> None:
    with open(os.environ["TRIGGER_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(fields) + "\n")


@app.function_name("record_message")
@app.queue_trigger(arg_name="message", queue_name="%WORK_QUEUE%", connection="WORK_QUEUES")
def record_message(message: func.QueueMessage) -> None:
    body = message.get_body().decode()
    _note(kind="message", body=body, dequeue_count=message.dequeue_count)
    if body == "fail":
        raise RuntimeError("this message always fails")


@app.function_name("tick")
@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    _note(kind="tick")

"""What storage shows of what it keeps: jobs, runs and rules as the replies carry them."""

from __future__ import annotations

from kairoi import messages
from kairoi.amqp.dsn import mask_dsn
from kairoi.domain import AmqpRunner, Job, Rule, Run, runner_arguments
from kairoi.storage import lifecycle


def job_state(job: Job) -> messages.JobState:
    return messages.JobState(
        job_id=job.id,
        status=job.status.name.lower(),
        next_due_us=lifecycle.next_due_us(job),
        run=job.run,
        last_outcome="" if job.last_outcome is None else job.last_outcome.value,
        last_finished_us=job.last_finished_us,
    )


def run_state(run: Run) -> messages.RunState:
    return messages.RunState(
        run=run.run,
        due_us=run.due_us,
        started_us=run.started_us,
        finished_us=run.finished_us,
        outcome=run.outcome.value,
        exit_code=run.exit_code,
        manual=run.manual,
        reason=run.reason,
    )


def rule_state(rule: Rule) -> messages.RuleState:
    """The rule as a client may see it: never an AMQP password."""
    runner, arguments = runner_arguments(rule.runner)
    if isinstance(rule.runner, AmqpRunner):
        arguments = (mask_dsn(rule.runner.dsn), *arguments[1:])
    return messages.RuleState(
        rule_id=rule.id, pattern=rule.pattern, runner=runner, arguments=arguments
    )

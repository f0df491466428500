"""The SLURM source's rules in memory: squeue and sacct answers as the lab's SLURM 22.05 prints them.

Each test hands the source's Pass a snapshot of what the tools said (the
text below was captured from the real lab, then varied) and reads the events
it makes. The real cluster runs the same paths in tests/slurm/test_ends.py and test_jobs.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from notifyd.notify import message
from notifyd.notify.outcome import Outcome
from notifyd.slurm import parse, states
from notifyd.watcher.sources.slurm import Pass, Settings, SlurmSource, Snapshot, hold, merge

US = parse.US
T0 = 1_796_166_555


def line(job: int, state: str, *, array: int | None = None, task: str = "N/A", reason: str = "None",
         nodes: str = "vm", submit: int = T0, start: int = T0 + 3, end: int = T0 + 4, used: str = "0:01",
         limit: str = "UNLIMITED", restarts: int = 0, exit_raw: int = 0, name: str = "wrap") -> str:
    fields = [str(job), str(array if array is not None else job), task, state, reason, "debug", nodes,
              str(submit), str(start), str(end), used, limit, "1", "1G", str(restarts), str(exit_raw),
              "/home/ana", f"/home/ana/slurm-{job}.out", name]
    return US.join(fields) + US


def acct(job: str, raw: int, state: str, exit_code: str = "0:0", *, steps: list[tuple[str, str, str]] = (),
         elapsed: str = "00:00:01", cpu: str = "00:00.500", req: str = "1G", cpus: str = "1") -> str:
    out = [US.join([job, str(raw), state, exit_code, "0:0", elapsed, "", cpu, req, cpus, "vm",
                    str(T0 + 3), str(T0 + 4), str(T0), "UNLIMITED", "debug", "wrap"])]
    for step, code, rss in steps:
        out.append(US.join([f"{job}.{step}", f"{raw}.{step}", "COMPLETED", code, "", elapsed, rss, cpu, "",
                            cpus, "vm", str(T0 + 3), str(T0 + 4), str(T0 + 3), "", "", step]))
    return "\n".join(out) + "\n"


class Lab:
    """A source and its cursor, driven one poll at a time with answers the test writes."""

    def __init__(self, **settings: Any) -> None:
        self.source = SlurmSource(Settings(**settings), "vm", "ana")
        self.cursor: dict[str, Any] = {"cluster": "lab", "min_job_age": 600, "config_at": T0,
                                       "accounting": True}
        self.now = float(T0 + 10)

    def poll(self, *lines: str, sacct: str = "", catchup: str | None = None) -> list[dict[str, Any]]:
        snap = Snapshot(at=self.now, queue=parse.parse_squeue("\n".join(lines)),
                        acct=parse.parse_sacct(sacct),
                        catchup=parse.parse_sacct(catchup) if catchup is not None else None)
        polled = Pass(self.source, snap, self.cursor, self.now).run()
        self.cursor = polled.cursor
        self.notices = polled.notices
        self.now += 2
        return polled.events


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["ev"], str(e["slurm_job"]), str(e.get("slurm_state"))) for e in events]


# -- reading the tools' output -----------------------------------------------------------------


def test_squeue_gives_the_id_users_know_and_the_wait_status() -> None:
    (job,) = parse.parse_squeue(line(6, "COMPLETED", array=3, task="2", exit_raw=768))
    assert job.display_id == "3_2" and job.job_id == 6
    assert states.split_raw(job.exit_raw) == (3, None)


def test_a_pending_arrays_tasks_on_one_line_are_no_job_of_their_own() -> None:
    (job,) = parse.parse_squeue(line(574, "PENDING", array=574, task="[1-6%2]", nodes=""))
    assert job.pending_tasks and job.array_task == "1-6%2"


def test_a_job_name_with_the_separators_of_other_tools_reads_whole() -> None:
    (job,) = parse.parse_squeue(line(7, "RUNNING", name="a|b c=d\tx"))
    assert job.name == "a|b c=d\tx"


def test_sacct_folds_the_steps_peak_memory_and_signals_into_the_job() -> None:
    (job,) = parse.parse_sacct(acct("31", 31, "CANCELLED by 1001", steps=[("batch", "0:15", "4432K"),
                                                                        ("0", "0:0", "315104K")])).values()
    assert (job.state, job.cancelled_by) == ("CANCELLED", "1001")
    assert job.max_rss_kb == 315104 and job.step_signals == [15]


@pytest.mark.parametrize(("text", "seconds"), [("1-02:03:04", 93784), ("02:03:04", 7384), ("03:04", 184),
                                               ("00:08.281", 8.281), ("UNLIMITED", None), ("", None)])
def test_slurm_durations(text: str, seconds: float | None) -> None:
    assert parse.duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(("text", "kb"), [("3312K", 3312), ("1G", 1024**2), ("23081M", 23081 * 1024),
                                          ("100", None if False else 0), ("n/a", None)])
def test_slurm_sizes(text: str, kb: int | None) -> None:
    assert parse.size_kb(text) == kb


def test_the_config_says_how_long_a_finished_job_stays_and_whether_accounting_is_kept() -> None:
    config = parse.parse_config("MinJobAge               = 600 sec\n"
                                "AccountingStorageType   = accounting_storage/none\nClusterName = lab\n")
    assert parse.min_job_age(config) == 600 and not parse.accounting_configured(config)


# -- each end told as it is --------------------------------------------------------------------


def end_of(state: str, **kw: Any) -> dict[str, Any]:
    lab = Lab()
    lab.poll(line(1, "RUNNING"))
    sacct = kw.pop("sacct", "")
    evs = [e for e in lab.poll(line(1, state, **kw), sacct=sacct) if e["ev"] == "finish"]
    if state in states.REQUEUED_AFTER:  # told one poll later, unless requeued meanwhile
        evs = [e for e in lab.poll(line(1, state, **kw), sacct=sacct) if e["ev"] == "finish"]
    (ev,) = evs
    return ev


def test_completed_is_exit_0_and_ok() -> None:
    ev = end_of("COMPLETED")
    assert (ev["exit"], Outcome.of(ev)) == (0, Outcome.OK)


def test_failed_carries_its_exit_code() -> None:
    ev = end_of("FAILED", exit_raw=768, reason="NonZeroExitCode")
    assert (ev["exit"], ev["signal"], Outcome.of(ev)) == (3, None, Outcome.FAILED)
    assert message.finished(ev).title.endswith("failed: exit 3")


def test_an_end_waits_briefly_for_accountings_final_line_and_then_takes_its_figures() -> None:
    # slurmdbd learns of the end a moment after the controller: sacct first says still running, 0:0.
    lab = Lab(interval=60)
    lab.poll(line(1, "RUNNING"))
    ended = line(1, "FAILED", exit_raw=768, reason="NonZeroExitCode")
    assert lab.poll(ended, sacct=acct("1", 1, "RUNNING")) == []
    assert lab.source._next - (lab.now - 2) == 1  # asked again soon, not an interval later
    final = acct("1", 1, "FAILED", "3:0", steps=[("batch", "3:0", "4432K")])
    (ev,) = [e for e in lab.poll(ended, sacct=final) if e["ev"] == "finish"]
    assert (ev["exit"], ev["maxrss_kb"]) == (3, 4432)


def test_an_accounting_line_that_stays_unfinished_is_not_believed_over_the_controller() -> None:
    lab = Lab(interval=60)
    lab.poll(line(1, "RUNNING"))
    ended = line(1, "FAILED", exit_raw=768, reason="NonZeroExitCode")
    told: list[dict[str, Any]] = []
    for _ in range(8):  # 16 s of polls, past the wait
        told += [e for e in lab.poll(ended, sacct=acct("1", 1, "RUNNING")) if e["ev"] == "finish"]
    (ev,) = told
    assert (ev["exit"], Outcome.of(ev)) == (3, Outcome.FAILED) and "maxrss_kb" not in ev
    assert message.finished(ev).title.endswith("failed: exit 3")


def test_failed_with_0_9_is_a_sigkill_whatever_the_reason_says() -> None:
    ev = end_of("FAILED", exit_raw=9, reason="JobLaunchFailure")
    assert (ev["exit"], ev["signal"]) == (None, 9)
    assert "killed by SIGKILL" in message.finished(ev).title


@pytest.mark.parametrize(("state", "said"), [("TIMEOUT", "hit its time limit"),
                                             ("OUT_OF_MEMORY", "ran out of memory"),
                                             ("NODE_FAIL", "lost its node"), ("PREEMPTED", "was preempted"),
                                             ("BOOT_FAIL", "could not boot"),
                                             ("DEADLINE", "missed its deadline")])
def test_every_other_end_is_a_failure_told_by_its_state(state: str, said: str) -> None:
    ev = end_of(state)
    assert Outcome.of(ev) is Outcome.FAILED
    assert said in message.finished(ev).title


def test_cancelled_says_by_whom_when_accounting_knows() -> None:
    ev = end_of("CANCELLED", sacct=acct("1", 1, "CANCELLED by 0"))
    assert message.finished(ev).title.endswith("was cancelled by root")


def test_a_pending_job_cancelled_never_ran() -> None:
    lab = Lab()
    lab.poll(line(2, "PENDING", reason="BeginTime", nodes="", start=T0 + 3600, end=0))
    (ev,) = [e for e in lab.poll(line(2, "CANCELLED", reason="BeginTime", nodes="")) if e["ev"] == "finish"]
    body = message.finished(ev).body
    assert "never ran" in body and "BeginTime" in body


def test_a_job_last_seen_pending_that_ended_on_a_node_did_run() -> None:
    lab = Lab()
    lab.poll(line(3, "PENDING", reason="Resources", nodes="", start=0, end=0))
    (ev,) = [e for e in lab.poll(line(3, "OUT_OF_MEMORY")) if e["ev"] == "finish"]
    assert "slurm_never_ran" not in ev
    assert message.finished(ev).title == "❌ wrap (job 3) ran out of memory"


def test_an_oom_kill_hints_at_asking_for_more_memory() -> None:
    ev = end_of("OUT_OF_MEMORY", exit_raw=9, sacct=acct("1", 1, "OUT_OF_MEMORY", "0:125", req="100M",
                                                         steps=[("batch", "0:125", "62148K")]))
    body = message.finished(ev).body
    assert "ask for more memory than the 100.0 MiB asked" in body and "60.7 MiB" in body


def test_a_timeout_hints_at_the_limit() -> None:
    ev = end_of("TIMEOUT", limit="1:00", used="1:05", start=T0, end=T0 + 65)
    assert "the limit was 1 min 00 s" in message.finished(ev).body


# -- requeues, vanished records, arrays ------------------------------------------------------------


def test_a_requeue_after_a_node_failure_is_told_as_a_requeue_not_an_end() -> None:
    lab = Lab()
    lab.poll(line(1, "RUNNING"))
    events = lab.poll(line(1, "PENDING", reason="BeginTime", restarts=1, nodes=""))
    (ev,) = events
    assert ev["ev"] == "start" and ev["slurm_requeued"] == 1
    assert not [e for e in events if e["ev"] == "finish"]


def test_a_node_fail_seen_and_then_requeued_is_not_told_as_an_end() -> None:
    lab = Lab()
    lab.poll(line(1, "RUNNING"))
    assert lab.poll(line(1, "NODE_FAIL")) == []  # told only if it stays so
    events = lab.poll(line(1, "PENDING", restarts=1, nodes=""))
    assert [e["ev"] for e in events] == ["start"] and events[0]["slurm_requeued"] == 1


def test_the_final_end_of_a_requeued_job_is_told_once() -> None:
    lab = Lab()
    lab.poll(line(1, "RUNNING"))
    lab.poll(line(1, "PENDING", restarts=1, nodes=""))
    lab.poll(line(1, "RUNNING", restarts=1))
    finishes = [e for e in lab.poll(line(1, "COMPLETED", restarts=1)) if e["ev"] == "finish"]
    assert len(finishes) == 1
    assert [e for e in lab.poll(line(1, "COMPLETED", restarts=1)) if e["ev"] == "finish"] == []


def test_a_record_gone_before_its_end_was_seen_is_never_told_as_completed() -> None:
    lab = Lab()
    lab.cursor["accounting"] = False
    lab.poll(line(1, "RUNNING"))
    (ev,) = lab.poll()
    assert ev["slurm_gone"] and Outcome.of(ev) is Outcome.UNKNOWN
    assert message.finished(ev).title == "🏁 wrap (job 1) ended, details no longer available"


def test_a_record_gone_is_told_whichever_end_states_the_user_asked_for() -> None:
    lab = Lab(tell=frozenset({"FAILED"}))
    lab.cursor["accounting"] = False
    lab.poll(line(1, "RUNNING"))
    (ev,) = lab.poll()
    assert ev["slurm_gone"] and ev.get("notify") != "none"


def test_a_record_gone_is_told_from_accounting_where_it_is_kept() -> None:
    lab = Lab()
    lab.poll(line(1, "RUNNING"))
    (ev,) = lab.poll(sacct=acct("1", 1, "FAILED", "2:0"))
    assert (ev["slurm_state"], ev["exit"]) == ("FAILED", 2) and not ev.get("slurm_gone")


def test_an_array_waits_for_a_task_whose_end_waits_for_accounting() -> None:
    lab = Lab()
    lab.poll(*[line(10 + i, "RUNNING", array=10, task=str(i)) for i in range(2)])
    ended = [line(10, "COMPLETED", array=10, task="0"), line(11, "FAILED", array=10, task="1", exit_raw=256)]
    stale = acct("10_0", 10, "COMPLETED") + acct("10_1", 11, "RUNNING")
    assert [e for e in lab.poll(*ended, sacct=stale) if e["ev"] == "finish"] == []
    final = acct("10_0", 10, "COMPLETED") + acct("10_1", 11, "FAILED", "1:0")
    finishes = [e for e in lab.poll(*ended, sacct=final) if e["ev"] == "finish"]
    assert sorted(e["slurm_job"] for e in finishes) == ["10_0", "10_1"]  # one summary, both tasks
    assert lab.poll(*ended, sacct=final) == []


def test_an_array_is_told_when_its_last_task_ends() -> None:
    lab = Lab()
    tasks = [line(10 + i, "RUNNING", array=10, task=str(i)) for i in range(3)]
    lab.poll(*tasks)
    ended = [line(10, "COMPLETED", array=10, task="0"), line(11, "FAILED", array=10, task="1", exit_raw=256),
             tasks[2]]
    assert [e for e in lab.poll(*ended) if e["ev"] == "finish"] == []  # task 2 still runs
    done = [*ended[:2], line(12, "COMPLETED", array=10, task="2")]
    finishes = [e for e in lab.poll(*done) if e["ev"] == "finish"]
    assert sorted(e["slurm_job"] for e in finishes) == ["10_0", "10_1", "10_2"]
    assert {e["group"] for e in finishes} == {"slurm-10"}


def test_an_array_with_tasks_still_pending_on_one_line_waits_for_them() -> None:
    lab = Lab()
    lab.poll(line(20, "RUNNING", array=20, task="1"), line(20, "PENDING", array=20, task="[2-5%1]", nodes=""))
    evs = lab.poll(line(20, "COMPLETED", array=20, task="1"),
                   line(20, "PENDING", array=20, task="[2-5%1]", nodes=""))
    assert [e for e in evs if e["ev"] == "finish"] == []


def test_failed_array_tasks_are_also_told_alone_when_asked() -> None:
    lab = Lab(array_failures=True)
    lab.poll(line(30, "RUNNING", array=30, task="1"))
    (ev,) = [e for e in lab.poll(line(30, "FAILED", array=30, task="1", exit_raw=256)) if e["ev"] == "finish"]
    assert ev["notify_alone"] is True


# -- told once with pingch ----------------------------------------------------------------------


def pingch_finish(**kw: Any) -> dict[str, Any]:
    return {"v": 1, "ev": "finish", "job": "vm-4242-abcd1234", "host": "vm", "pid": 4242, "title": "relax",
            "cmd": "python relax.py", "ts": float(T0 + 4), "start_ts": float(T0 + 3), "exit": 0,
            "signal": None, "maxrss_kb": 213_424, "slurm_job": "1", "slurm_raw": 1, **kw}


def test_a_pingch_finish_inside_the_job_is_told_once_with_the_schedulers_end() -> None:
    lab = Lab()
    lab.poll(line(1, "RUNNING"))
    hold(lab.cursor, pingch_finish())
    (ev,) = [e for e in lab.poll(line(1, "COMPLETED"), sacct=acct("1", 1, "COMPLETED",
                                                                   steps=[("batch", "0:0", "3348K")]))
             if e["ev"] == "finish"]
    assert ev["job"] == "vm-4242-abcd1234" and ev["slurm_merged"]
    assert ev["maxrss_kb"] == 213_424  # pingch's exact peak, not SLURM's sampled 3.3 MB
    assert ev["slurm_state"] == "COMPLETED" and ev["cmd"] == "python relax.py"


def test_the_scheduler_speaks_where_pingch_could_not() -> None:
    merged = merge(pingch_finish(exit=None, signal=9),
                   {"slurm_state": "OUT_OF_MEMORY", "signal": 9, "oom": True, "slurm_job": "1",
                    "job": "slurm-lab-1-0"})
    assert merged["oom"] is True and Outcome.of(merged) is Outcome.FAILED


def test_a_pingch_finish_waits_only_so_long_for_the_scheduler() -> None:
    lab = Lab()
    lab.poll(line(1, "RUNNING"))
    hold(lab.cursor, pingch_finish(ts=lab.now - 400))
    (ev,) = lab.poll(line(1, "RUNNING"))
    assert ev["job"] == "vm-4242-abcd1234" and "slurm_state" not in ev


# -- the watcher was down ------------------------------------------------------------------------


def test_after_a_long_downtime_accounting_tells_what_ended_meanwhile() -> None:
    lab = Lab()
    lab.poll()
    lab.now += 3600
    events = lab.poll(catchup=acct("40", 40, "FAILED", "1:0"))
    assert [(e["slurm_job"], e["exit"]) for e in events] == [("40", 1)]


def test_after_a_long_downtime_without_accounting_one_notice_names_the_window() -> None:
    lab = Lab()
    lab.cursor["accounting"] = False
    lab.poll()
    lab.now += 3600
    assert lab.poll() == []
    (notice,) = lab.notices
    assert "could not be checked" in notice.title and lab.cursor["gap"][1] > lab.cursor["gap"][0]


def test_a_catch_up_that_failed_is_asked_again_not_given_up() -> None:
    lab = Lab()
    lab.poll()
    lab.now += 3600
    assert lab.poll(catchup=None) == [] and lab.notices == []
    assert lab.poll(catchup=acct("41", 41, "COMPLETED"))[0]["slurm_job"] == "41"


# -- cadence ----------------------------------------------------------------------------------------


def test_polls_every_interval_while_the_user_has_jobs_and_never_past_half_min_job_age() -> None:
    lab = Lab(interval=60)
    lab.cursor["min_job_age"] = 30
    lab.poll(line(1, "RUNNING"))
    assert lab.cursor["interval"] == 15


def test_backs_off_while_the_user_has_no_jobs() -> None:
    lab = Lab(interval=60, idle_interval=300)
    intervals = []
    for _ in range(5):
        lab.poll()
        intervals.append(lab.cursor["interval"])
    assert intervals == [60, 120, 240, 300, 300]


def test_a_held_pingch_finish_makes_the_next_poll_come_soon_then_less_and_less_soon() -> None:
    lab = Lab(interval=60)
    lab.poll(line(1, "RUNNING"))
    hold(lab.cursor, pingch_finish())
    lab.source.hurry(lab.now)
    assert not lab.source.due(lab.now + 0.4) and lab.source.due(lab.now + 0.5)
    waits = []
    for _ in range(8):  # the job is still completing: the scheduler has not said it ended
        lab.poll(line(1, "COMPLETING"))
        waits.append(lab.source._next - (lab.now - 2))
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]


def test_the_hurry_ends_with_the_held_finish() -> None:
    lab = Lab(interval=60)
    lab.poll(line(1, "RUNNING"))
    hold(lab.cursor, pingch_finish())
    lab.source.hurry(lab.now)
    lab.poll(line(1, "COMPLETED"), sacct=acct("1", 1, "COMPLETED"))
    assert lab.cursor["held"] == {}
    assert lab.source._next - (lab.now - 2) == lab.cursor["interval"] >= 60  # no jobs left: backing off


def test_a_requeue_keeps_the_jobs_id_though_it_gets_a_new_submit_time() -> None:
    lab = Lab()
    (start,) = lab.poll(line(1, "RUNNING"))
    (requeue,) = lab.poll(line(1, "PENDING", restarts=1, nodes="", submit=T0 + 30))
    assert requeue["slurm_requeued"] == 1 and requeue["job"] == start["job"]
    lab.poll(line(1, "RUNNING", restarts=1, submit=T0 + 30))
    (end,) = [e for e in lab.poll(line(1, "COMPLETED", restarts=1, submit=T0 + 30)) if e["ev"] == "finish"]
    assert end["job"] == start["job"]


def test_a_recycled_id_is_another_job() -> None:
    lab = Lab()
    lab.poll(line(1, "RUNNING"))
    lab.poll(line(1, "COMPLETED"))
    (other,) = lab.poll(line(1, "RUNNING", submit=T0 + 9000))
    assert other["ev"] == "start" and other["job"].endswith(str(T0 + 9000))


# -- what pingch records inside a job ---------------------------------------------------------------


def test_pingch_inside_an_array_task_records_the_id_users_know() -> None:
    from notifyd.pingch.record import slurm_ids

    ids = slurm_ids({"SLURM_JOB_ID": "4215", "SLURM_ARRAY_JOB_ID": "4211", "SLURM_ARRAY_TASK_ID": "3",
                     "SLURM_CPUS_ON_NODE": "8", "SLURM_MEM_PER_NODE": "16000", "SLURM_CLUSTER_NAME": "lab"})
    assert ids == {"slurm_raw": 4215, "slurm_job": "4211_3", "slurm_array": 4211, "slurm_task": "3",
                   "slurm_cluster": "lab", "slurm_cpus": 8, "slurm_mem_mb": 16000}


@pytest.mark.parametrize("odd", ["", "abc", "²", "٣", "1" * 40, "-3"])
def test_pingch_takes_no_slurm_ids_from_an_odd_environment(odd: str) -> None:
    from notifyd.pingch.record import slurm_ids

    assert slurm_ids({"SLURM_JOB_ID": odd}) == {}
    assert "slurm_cpus" not in slurm_ids({"SLURM_JOB_ID": "5", "SLURM_CPUS_ON_NODE": odd})


def test_an_event_whose_slurm_id_is_not_a_number_is_skipped_where_it_is_read() -> None:
    from notifyd.spool.events import MalformedEvent, decode

    good = ('{"v":1,"ev":"finish","job":"vm-1-a","host":"vm","pid":1,"ts":1796166555,'
            '"slurm_raw":7,"slurm_job":"7"}')
    assert decode(good.encode())["slurm_raw"] == 7
    with pytest.raises(MalformedEvent, match="slurm_raw"):
        decode(good.replace('"slurm_raw":7', '"slurm_raw":"7"').encode())


def test_a_failing_poll_is_said_once_not_at_every_try() -> None:
    lab = Lab()
    said = []
    for _ in range(3):
        snap = Snapshot(at=lab.now, answers=[])
        polled = Pass(lab.source, snap, lab.cursor, lab.now).run()
        said += polled.warnings
        lab.cursor, lab.now = polled.cursor, lab.now + 60
    assert len(said) == 1 and "squeue gave no answer" in said[0]
    assert lab.cursor["error"] == "squeue gave no answer"


def test_a_host_with_the_client_tools_but_no_cluster_is_told_how_to_stop_the_tries() -> None:
    from notifyd.slurm.tools import Answer

    answer = Answer(("squeue",), ok=False, stderr="squeue: error: resolve_ctls_from_dns_srv: res_nsearch "
                    "error: Unknown host\nsqueue: error: fetch_config: DNS SRV lookup failed\n")
    assert answer.problem == ("squeue finds no SLURM cluster from this host (no slurm.conf, no DNS record); "
                              "[slurm] enabled = no stops the tries")

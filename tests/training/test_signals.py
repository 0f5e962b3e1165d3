"""The stop request under DDP: every process acts on the vote, never on its own late signal."""

import signal

from resnetlab.training.signals import StopRequest


def test_a_signal_during_the_vote_waits_for_the_next_vote():
    stop = StopRequest()

    def vote_while_signalled(mine: bool) -> bool:
        stop._handle(signal.SIGTERM, None)  # the handler runs while the collective is in flight
        return mine  # the other process voted no, so no one stops at this step

    stop.agree = vote_while_signalled
    assert stop.agreed() is None  # stopping here alone would leave the other process waiting forever
    stop.agree = lambda mine: mine
    assert stop.agreed() == "SIGTERM"  # counted at the next vote, by every process


def test_a_yes_vote_stops_a_process_that_got_no_signal():
    stop = StopRequest()
    stop.agree = lambda mine: True
    assert stop.agreed() == "a signal to another process"


def test_alone_the_request_is_read_directly():
    stop = StopRequest()
    assert stop.agreed() is None
    stop._handle(signal.SIGINT, None)
    assert stop.agreed() == "SIGINT"

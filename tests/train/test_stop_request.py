"""SIGTERM / SIGINT during training: the first only asks the loop to stop after the iteration in
flight; a second stops at once; the previous handlers come back afterwards."""

import os
import signal

import pytest

from sonic_ray.train.driver import StopRequest


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_requests_a_stop_second_interrupts(signum, capsys):
    before = signal.getsignal(signum)
    with StopRequest() as stop:
        os.kill(os.getpid(), signum)
        assert stop.signum == signum  # the handler ran, nothing was raised
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
    assert signal.getsignal(signum) is before
    said = f"{signal.Signals(signum).name} received; finishing the iteration in flight"
    assert said in capsys.readouterr().err

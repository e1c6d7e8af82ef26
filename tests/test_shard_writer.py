"""The background shard writer: a write's error reaches the extraction loop; nothing handed over is lost."""

from __future__ import annotations

import threading

import pytest

from extract.shard_writer import ShardWriter


def test_a_failed_write_is_raised_in_the_caller_not_lost_on_the_thread():
    def write(records):
        raise OSError(28, "No space left on device")

    writer = ShardWriter(write, depth=1)
    writer.submit([{"a": 1}])
    with pytest.raises(OSError, match="No space"):
        writer.submit([{"a": 2}])  # the first write's error, at the next hand-over at the latest
        writer.close()


def test_shards_handed_over_before_the_loop_fails_are_all_written():
    written, release = [], threading.Event()

    def write(records):
        release.wait(5)
        written.append(records[0]["i"])

    with pytest.raises(KeyError):
        with ShardWriter(write, depth=3) as writer:
            for i in range(3):
                writer.submit([{"i": i}])
            release.set()
            raise KeyError("a bad input after three shards")
    assert written == [0, 1, 2]


def test_the_caller_never_runs_more_than_depth_shards_ahead():
    started, gate = [], threading.Event()

    def write(records):
        started.append(records[0]["i"])
        gate.wait(5)

    writer = ShardWriter(write, depth=2)
    writer.submit([{"i": 0}])
    writer.submit([{"i": 1}])
    third = threading.Thread(target=writer.submit, args=([{"i": 2}],))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # blocked: two shards are already pending
    gate.set()
    third.join(5)
    writer.close()
    assert started == [0, 1, 2]


def test_the_last_shards_failed_write_is_raised_when_the_block_ends():
    def write(records):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        with ShardWriter(write) as writer:
            writer.submit([{"i": 0}])  # the final shard: nothing after it would see the error

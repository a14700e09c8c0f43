"""Transactional producers retry CONCURRENT_TRANSACTIONS after 1 ms, also where aiokafka hard-codes 20 ms."""

from __future__ import annotations

import inspect

from aiokafka.producer import sender

from streams import kafka


async def test_transactional_producers_retry_after_one_millisecond() -> None:
    txn = kafka.producer("127.0.0.1:9", transactional_id="t")
    plain = kafka.producer("127.0.0.1:9")
    try:
        assert txn._sender._retry_backoff == 0.001 and plain._sender._retry_backoff == 0.1
    finally:
        for producer in (txn, plain):
            await producer.stop()


def test_aiokafka_still_uses_the_override_that_streams_kafka_sets() -> None:
    # An aiokafka upgrade that renames or inlines it brings the fixed 20 ms wait back: review streams/kafka.py.
    assert sender.BACKOFF_OVERRIDE == kafka.TXN_RETRY_BACKOFF_MS / 1000 == 0.001
    assert "return BACKOFF_OVERRIDE" in inspect.getsource(sender.AddPartitionsToTxnHandler)
